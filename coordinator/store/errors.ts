// Why a store could not be opened: both stores throw these, the command line prints their one line.

export class DatabaseOpenError extends Error {
  override readonly name = 'DatabaseOpenError';
}

export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
}
