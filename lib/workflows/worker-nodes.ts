/**
 * Every nodes module the worker binds (lib/workflows/nodes.ts), behind one dynamic import: one
 * chunk for all the nodes' code, rather than one per workflow, keeps the split bundle from
 * scattering the code the nodes share with the app over many small chunks (each a file to read
 * on the first message).
 */
export * as ciTriage from './ci-triage-nodes.ts';
export * as commentCommand from './comment-command-nodes.ts';
export * as coverage from './coverage-nodes.ts';
export * as issuePipeline from './issue-pipeline-nodes.ts';
