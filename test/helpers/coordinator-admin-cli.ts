// A stand-in for bin/pinhole with only the admin command wired in, handling errors the way
// agent/cli/main.ts does (one line on stderr, non-zero exit): lets the admin CLI be tested as a
// real process before the lead wires registerAdminCommand into the main program.
import { Command, CommanderError } from 'commander';
import { registerAdminCommand } from '../../agent/cli/admin-command.js';

const program = new Command('pinhole').exitOverride().showHelpAfterError(false);
registerAdminCommand(program);
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`pinhole: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}
