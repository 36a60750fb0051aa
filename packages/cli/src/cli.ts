/** Entry of the `backchannel` command (started by bin/backchannel.js). */
import { buildProgram } from './program.js';

await buildProgram().parseAsync(process.argv);
