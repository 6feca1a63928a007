import { describe, expect, it } from 'vitest';
import { MAX_CLIENT_FRAME_BYTES } from '../../lib/constants.js';
import { PushwireError, TooLargeError, ValidationError } from '../../lib/errors.js';
import { encodeFrame, parseClientFrame } from '../../lib/protocol/frames.js';

/** Runs parseClientFrame and returns what it threw (or fails the test if it did not throw). */
function refusal(body: string | undefined): PushwireError {
  try {
    parseClientFrame(body);
  } catch (error) {
    if (error instanceof PushwireError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(body)} to be refused`);
}

describe('parseClientFrame accepts each action', () => {
  it('parses ping', () => {
    // Act
    const frame = parseClientFrame('{"action":"ping"}');

    // Assess
    expect(frame).toEqual({ action: 'ping' });
  });

  it('parses subscribe with a topic', () => {
    // Act
    const frame = parseClientFrame('{"action":"subscribe","topic":"team:42:alerts"}');

    // Assess
    expect(frame).toEqual({ action: 'subscribe', topic: 'team:42:alerts' });
  });

  it('parses subscribe with a since cursor', () => {
    // Act
    const frame = parseClientFrame(
      '{"action":"subscribe","topic":"news","since":"1732752000000-3"}',
    );

    // Assess
    expect(frame).toEqual({ action: 'subscribe', topic: 'news', since: '1732752000000-3' });
  });

  it('parses unsubscribe', () => {
    // Act
    const frame = parseClientFrame('{"action":"unsubscribe","topic":"news"}');

    // Assess
    expect(frame).toEqual({ action: 'unsubscribe', topic: 'news' });
  });

  it('parses resume with a since cursor, short form included', () => {
    // Act
    const full = parseClientFrame('{"action":"resume","since":"1732752000000-0"}');
    const short = parseClientFrame('{"action":"resume","since":"0"}');

    // Assess
    expect(full).toEqual({ action: 'resume', since: '1732752000000-0' });
    expect(short).toEqual({ action: 'resume', since: '0' });
  });

  it('accepts topics using every allowed character, up to 128 characters', () => {
    // Prepare
    const topic = `Aa0_.:@=-${'x'.repeat(119)}`;

    // Act
    const frame = parseClientFrame(JSON.stringify({ action: 'subscribe', topic }));

    // Assess
    expect(topic).toHaveLength(128);
    expect(frame).toEqual({ action: 'subscribe', topic });
  });
});

describe('parseClientFrame refuses bad frames with a code', () => {
  it.each([
    ['truncated JSON', '{"action":"ping"'],
    ['plain text', 'ping'],
    ['single quotes', "{'action':'ping'}"],
  ])('answers invalid_json for %s', (_label, body) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.code).toBe('invalid_json');
    expect(error.status).toBe(400);
  });

  it.each([
    ['an unknown action', '{"action":"publish","topic":"x"}', /"publish"/],
    ['no action', '{"topic":"x"}', /null/],
    ['a numeric action', '{"action":1}', /1/],
  ])('answers unknown_action for %s and lists the known actions', (_label, body, named) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error.code).toBe('unknown_action');
    expect(error.message).toMatch(named);
    expect(error.message).toContain('ping, subscribe, unsubscribe, resume');
  });

  it.each([
    ['a topic with *', '{"action":"subscribe","topic":"news*"}'],
    ['a topic with a space', '{"action":"subscribe","topic":"a b"}'],
    ['an empty topic', '{"action":"subscribe","topic":""}'],
    ['a topic of 129 characters', JSON.stringify({ action: 'subscribe', topic: 'x'.repeat(129) })],
    ['a numeric topic', '{"action":"unsubscribe","topic":7}'],
    ['a missing topic', '{"action":"subscribe"}'],
  ])('answers invalid_frame naming the topic for %s', (_label, body) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.code).toBe('invalid_frame');
    expect(error.message).toMatch(/^topic: /);
  });

  it.each([
    ['a bad cursor on resume', '{"action":"resume","since":"yesterday"}', 'invalid_cursor'],
    ['a cursor that is not a string', '{"action":"resume","since":7}', 'invalid_cursor'],
    ['a missing cursor on resume', '{"action":"resume"}', 'invalid_frame'],
    [
      'a bad cursor on subscribe',
      '{"action":"subscribe","topic":"news","since":"1-2-3"}',
      'invalid_cursor',
    ],
  ])('answers %s naming since', (_label, body, code) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error.code).toBe(code);
    expect(error.message).toMatch(/^since: /);
  });

  it('answers invalid_frame, not invalid_cursor, when since is not the only problem', () => {
    // Act
    const error = refusal('{"action":"subscribe","topic":"no spaces","since":"x"}');

    // Assess
    expect(error.code).toBe('invalid_frame');
  });

  it('answers invalid_frame naming an unexpected extra field', () => {
    // Act
    const error = refusal('{"action":"ping","extra":true}');

    // Assess
    expect(error.code).toBe('invalid_frame');
    expect(error.message).toMatch(/^extra: /);
  });

  it.each([
    ['null', 'null'],
    ['an array', '[{"action":"ping"}]'],
    ['a string', '"ping"'],
    ['a number', '42'],
  ])('answers invalid_frame for a JSON %s instead of an object', (_label, body) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error.code).toBe('invalid_frame');
    expect(error.message).toContain('JSON object');
  });

  it.each([
    ['undefined', undefined],
    ['an empty string', ''],
  ])('answers invalid_frame for an empty body (%s)', (_label, body) => {
    // Act
    const error = refusal(body);

    // Assess
    expect(error.code).toBe('invalid_frame');
    expect(error.message).toMatch(/empty frame/);
  });

  it('answers too_large (413) for a frame over 32 KB, before trying to parse it', () => {
    // Prepare: not even JSON, so only the size check can refuse it as too large
    const body = 'x'.repeat(MAX_CLIENT_FRAME_BYTES + 1);

    // Act
    const error = refusal(body);

    // Assess
    expect(error).toBeInstanceOf(TooLargeError);
    expect(error.code).toBe('too_large');
    expect(error.status).toBe(413);
  });

  it('measures the limit in bytes, not characters', () => {
    // Prepare: 20,000 two-byte characters are 40,000 bytes
    const body = JSON.stringify({ action: 'subscribe', topic: 'é'.repeat(20_000) });

    // Act
    const error = refusal(body);

    // Assess
    expect(body.length).toBeLessThan(MAX_CLIENT_FRAME_BYTES);
    expect(error.code).toBe('too_large');
  });

  it('does not call a frame of exactly 32 KB too large', () => {
    // Prepare: a valid frame padded with whitespace to exactly the limit
    const json = '{"action":"ping"}';
    const body = json + ' '.repeat(MAX_CLIENT_FRAME_BYTES - json.length);

    // Act
    const frame = parseClientFrame(body);

    // Assess
    expect(Buffer.byteLength(body)).toBe(MAX_CLIENT_FRAME_BYTES);
    expect(frame).toEqual({ action: 'ping' });
  });
});

describe('encodeFrame', () => {
  it('encodes a server frame as its JSON text', () => {
    // Act
    const text = encodeFrame({ type: 'error', code: 'forbidden', message: 'no "x"' });

    // Assess
    expect(JSON.parse(text)).toEqual({ type: 'error', code: 'forbidden', message: 'no "x"' });
  });
});

describe('ref (docs/protocol.md PW-F3)', () => {
  it('every action takes a ref of 1-64 characters, and refuses any other', () => {
    for (const frame of [
      { action: 'ping' },
      { action: 'subscribe', topic: 'news' },
      { action: 'unsubscribe', topic: 'news' },
      { action: 'resume', since: '1-0' },
      { action: 'auth', token: 't' },
    ]) {
      expect(parseClientFrame(JSON.stringify({ ...frame, ref: 'x'.repeat(64) }))).toEqual({
        ...frame,
        ref: 'x'.repeat(64),
      });
      for (const ref of ['', 'x'.repeat(65), 7])
        expect(() => parseClientFrame(JSON.stringify({ ...frame, ref }))).toThrow(
          expect.objectContaining({ code: 'invalid_frame' }),
        );
    }
  });
});
