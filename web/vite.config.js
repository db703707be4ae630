// The dashboard is served by `authtrail serve` under /ui/ (see src/web/mod.rs).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/ui/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a local `authtrail serve` (./dev run): the API lives there.
    proxy: { '/api': 'http://127.0.0.1:8080', '/ui/demo': 'http://127.0.0.1:8080' },
  },
});
