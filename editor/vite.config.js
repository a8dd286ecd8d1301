// Fixed file names (no content hashes): the server embeds exactly these three files, and the
// test command rebuilds them and fails when the committed ones differ.
import { defineConfig } from 'vite'

export default defineConfig({
  base: './',
  build: {
    outDir: '../server/static/editor',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: 'editor.js',
        chunkFileNames: 'editor-[name].js',
        assetFileNames: 'editor.[ext]',
      },
    },
  },
})
