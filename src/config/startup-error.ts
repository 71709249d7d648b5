/**
 * A start-up failure that the person starting the process can fix. Its
 * message is one line that names the cause and the fix; it is printed
 * alone, without a stack, which would only bury it.
 */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
