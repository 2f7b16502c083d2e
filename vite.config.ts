// Builds dist/module.js the way Grafana loads a plugin: one AMD module whose
// imports of React and @grafana/* are left to Grafana (it provides them through
// SystemJS), plus plugin.json, the logo and the README beside it.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, Plugin } from 'vite';

import { isExternal } from './vite.externals';

const root = dirname(fileURLToPath(import.meta.url));

/** staticFiles copies what Grafana reads besides module.js. */
function staticFiles(): Plugin {
  const files: Array<[string, string]> = [
    ['plugin.json', 'plugin.json'],
    ['src/img/logo.svg', 'img/logo.svg'],
    ['src/README.md', 'README.md'],
  ];
  return {
    name: 'podwire-static-files',
    writeBundle(options) {
      const out = options.dir ?? resolve(root, 'dist');
      for (const [from, to] of files) {
        mkdirSync(dirname(resolve(out, to)), { recursive: true });
        copyFileSync(resolve(root, from), resolve(out, to));
      }
    },
  };
}

export default defineConfig(({ mode }) => ({
  // Grafana serves the plugin from its own path; module.js has no other chunks.
  base: './',
  publicDir: false,
  esbuild: {
    jsx: 'transform',
    jsxFactory: 'React.createElement',
    jsxFragment: 'React.Fragment',
    legalComments: 'none',
  },
  define: {
    'process.env.NODE_ENV': JSON.stringify(mode === 'development' ? 'development' : 'production'),
  },
  build: {
    outDir: 'dist',
    // dist/ also holds the backend executables: keep them.
    emptyOutDir: false,
    target: 'es2020',
    minify: mode !== 'development',
    sourcemap: true,
    reportCompressedSize: true,
    // No lib mode: it only writes es/cjs/umd/iife; Grafana wants AMD.
    modulePreload: false,
    rollupOptions: {
      input: resolve(root, 'src/module.ts'),
      external: isExternal,
      preserveEntrySignatures: 'exports-only',
      output: {
        format: 'amd',
        entryFileNames: 'module.js',
        amd: { forceJsExtensionForImports: false },
        inlineDynamicImports: true,
        exports: 'named',
      },
    },
  },
  plugins: [staticFiles()],
}));
