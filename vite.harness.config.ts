// Builds the browser tests' harness page (src/harness) into .build/harness:
// a normal web page with React and @grafana/* bundled in, served by the test
// host. Grafana never loads it; dist/ is built by vite.config.ts alone.
import { cpSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, Plugin } from 'vite';

const root = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(root, '.build/harness');

/** grafanaIcons copies @grafana/ui's icons where it fetches them from
 * without Grafana's public path: public/build/img/icons/. Grafana's server
 * also has a spinner the package lacks: a plain ring stands in for it. */
function grafanaIcons(): Plugin {
  return {
    name: 'podwire-harness-icons',
    writeBundle() {
      const icons = resolve(outDir, 'public/build/img/icons');
      cpSync(resolve(root, 'node_modules/@grafana/ui/dist/public/img/icons'), icons, { recursive: true });
      writeFileSync(
        resolve(icons, 'unicons/spinner.svg'),
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="9" fill="none" stroke="currentColor" stroke-width="2" stroke-dasharray="40 20"/></svg>\n'
      );
    },
  };
}

export default defineConfig({
  root: resolve(root, 'src/harness'),
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  esbuild: {
    jsx: 'transform',
    jsxFactory: 'React.createElement',
    jsxFragment: 'React.Fragment',
    legalComments: 'none',
  },
  define: {
    'process.env.NODE_ENV': JSON.stringify('production'),
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    reportCompressedSize: false,
    // React and @grafana/ui are bundled: the page is big on purpose.
    chunkSizeWarningLimit: 100000,
    rollupOptions: {
      onwarn(warning, warn) {
        // Libraries' "use client" lines and comment placement: harmless here.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE' || warning.code === 'INVALID_ANNOTATION') {
          return;
        }
        warn(warning);
      },
    },
  },
  plugins: [grafanaIcons()],
});
