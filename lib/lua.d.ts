/** Lua scripts are bundled as text (esbuild `loader: { '.lua': 'text' }`, a vite plugin in tests). */
declare module '*.lua' {
  const source: string;
  export default source;
}
