// Builds the demo into the server package (packages/server/dist/demo), which serves it at `/`
// with its assets under `/demo/`. File names stay the same from build to build; the server
// revalidates them with ETags instead.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/demo/',
  build: {
    outDir: fileURLToPath(new URL('../server/dist/demo/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    rollupOptions: {
      output: {
        entryFileNames: 'demo.js',
        chunkFileNames: '[name].js',
        assetFileNames: 'demo[extname]',
      },
    },
  },
});
