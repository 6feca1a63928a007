import { PushwireError } from '../../lib/errors.js';

export { TooLargeError, ValidationError } from '../../lib/errors.js';

/** A failure on our side whose text must not reach a caller (expose = false). */
export class InternalError extends PushwireError {
  constructor(message: string) {
    super('redis', message, 500, false);
  }
}
