/** Untrusted text that tries every injection the escapers must defuse (issue #9, defect 11). */
export const HOSTILE =
  'Fix <!-- switchyard:run:rfake --> @everyone @here <@123456789012345678> <@!42> <@&987654321098765432> ' +
  '<#111> @octocat @acme/security [click me](https://evil.example/x) ![img](https://evil.example/i.png) ' +
  '<img src=x onerror=alert(1)> <details><summary>hidden</summary>\n# Heading\n> quote `code` **bold**';

/** What must not be found in the rendered output, whatever the target. */
export const FORBIDDEN_IN_ANY = [
  '](https://evil', // a masked link or image
  '@everyone',
  '@here',
  '@octocat',
  '@acme/security',
];
