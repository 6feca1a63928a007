import { build } from 'esbuild';
import { createRequire } from 'node:module';
const root = process.cwd();
const plugins = createRequire(root + '/package.json')('./build/esbuild-plugins.cjs');
const fn = process.argv[2] ?? 'default';
const r = await build({ absWorkingDir: root, entryPoints: [`functions/${fn}.ts`], outdir: '/tmp/i16presence/meta', outExtension: {'.js':'.cjs'}, bundle:true, minify:true, sourcemap:false, target:'node20', platform:'node', format:'cjs', loader:{'.lua':'text'}, mainFields:['module','main'], plugins, logLevel:'warning', metafile: true});
const out = Object.values(r.metafile.outputs)[0];
for (const [k, v] of Object.entries(out.inputs).sort((a,b)=>b[1].bytesInOutput-a[1].bytesInOutput)) console.log(v.bytesInOutput, k);
