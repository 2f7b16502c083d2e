import { defineConfig } from 'vitest/config';

export default defineConfig({
  esbuild: {
    jsx: 'transform',
    jsxFactory: 'React.createElement',
    jsxFragment: 'React.Fragment',
  },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    testTimeout: 20000,
    pool: 'threads',
    css: false,
    server: {
      deps: {
        // @grafana packages ship ESM that imports CSS and bare JSON: let Vite transform them.
        inline: [/@grafana\//],
      },
    },
  },
});
