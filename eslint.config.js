import tseslint from 'typescript-eslint';

/** Node modules that touch files, processes or the network: none of them in a pure layer. */
const IO_MODULES = ['fs', 'fs/promises', 'child_process', 'net', 'http', 'https', 'dgram']
  .flatMap((m) => [m, `node:${m}`])
  .map((name) => ({ name, message: 'a pure layer does no I/O: do it in src/sys or a service' }));

/** Import patterns for these folders, from a file one or two levels below src/. */
const rooms = (...names) => names.flatMap((n) => [`../${n}/**`, `../../${n}/**`]);

/** What no pure layer may import. */
const UPPER = rooms('sys', 'store', 'service', 'controller', 'agent', 'cli', 'lab', 'client');

/**
 * Files matching `files` (tests excepted) may not import `groups` (relative paths) or `paths`.
 * No layer imports the console (src/console): only src/controller/app.ts mounts it (below).
 */
function layer(files, groups, paths = [], ignores = []) {
  const console = files === 'src/console/**' ? [] : rooms('console');
  return [
    {
      files: [files],
      ignores: ['**/*.test.ts', '**/testing.ts', ...ignores],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            paths,
            patterns: [
              { group: [...groups, ...console], message: 'this folder may not import that layer' },
            ],
          },
        ],
      },
    },
  ];
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bin/', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  // Layering: each folder imports only the rooms below it. The pure layers (api, core, spec,
  // render) do no I/O at all; the agent and the controller never import each other, and only
  // the CLI sits on top of everything (see "Layout" in the README).
  ...layer('src/api/**', ['../**'], IO_MODULES),
  // core < spec < render: the schema builds on core's address types, renderers on both.
  ...layer('src/core/**', [...UPPER, ...rooms('spec', 'render', 'api')], IO_MODULES),
  ...layer('src/spec/**', [...UPPER, ...rooms('render', 'api')], IO_MODULES),
  ...layer('src/render/**', UPPER, IO_MODULES),
  ...layer(
    'src/client/**',
    rooms('sys', 'store', 'service', 'controller', 'agent', 'cli', 'lab', 'core', 'spec', 'render'),
  ),
  ...layer(
    'src/store/**',
    rooms('sys', 'service', 'controller', 'agent', 'cli', 'lab', 'client', 'render'),
  ),
  ...layer('src/service/**', rooms('controller', 'agent', 'cli', 'lab', 'client')),
  ...layer('src/controller/**', rooms('agent', 'cli', 'lab'), [], ['src/controller/app.ts']),
  // app.ts assembles the controller: it alone mounts the console's routes.
  {
    files: ['src/controller/app.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: rooms('agent', 'cli', 'lab'),
              message: 'this folder may not import that layer',
            },
          ],
        },
      ],
    },
  },
  // The console (server-rendered pages): the wire contract, core, spec, and the controller's
  // state and views for their types; everything else through the ControllerState it is given.
  ...layer('src/console/**', [
    ...rooms('sys', 'store', 'service', 'agent', 'cli', 'lab', 'client', 'render'),
    '../controller/**',
    '!../controller/state.js',
    '!../controller/views.js',
    '../../controller/**',
    '!../../controller/state.js',
    '!../../controller/views.js',
  ]),
  // The browser script runs in a page: it imports nothing of ours.
  ...layer('src/console/browser/**', ['../**', './**']),
  ...layer('src/cli/**', []),
  ...layer('src/agent/**', rooms('controller', 'service', 'store', 'cli', 'lab')),
  ...layer('src/sys/**', rooms('store', 'service', 'controller', 'agent', 'cli', 'lab', 'client')),
  ...layer('src/lab/**', rooms('cli')),
  {
    // Tests poke at parsed YAML and JSON; strict any-checks there cost more than they catch.
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);
