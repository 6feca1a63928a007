import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { statSync, readdirSync } from 'node:fs';
const root = process.cwd();
const plugins = createRequire(root + '/package.json')('./build/esbuild-plugins.cjs');
const names = readdirSync('functions').filter(f=>f.endsWith('.ts')).map(f=>f.slice(0,-3));
await build({ absWorkingDir: root, entryPoints: Object.fromEntries(names.map(n=>[n,`functions/${n}.ts`])), outdir: '/tmp/i16presence/out', outExtension: {'.js':'.cjs'}, bundle:true, minify:true, sourcemap:false, target:'node20', platform:'node', format:'cjs', loader:{'.lua':'text'}, mainFields:['module','main'], plugins, logLevel:'warning'});
for (const n of names) console.log(n, statSync(`/tmp/i16presence/out/${n}.cjs`).size);
