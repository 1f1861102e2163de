// The condition language of analysis metrics: a tokenizer, a recursive-descent parser and an evaluator. Never `eval`.
//
// Grammar, loosest binding first:
//   or         := and ('||' and)*
//   and        := equality ('&&' equality)*
//   equality   := comparison (('==' | '!=') comparison)*
//   comparison := additive (('<' | '<=' | '>' | '>=') additive)*
//   additive   := term (('+' | '-') term)*
//   term       := unary (('*' | '/' | '%') unary)*
//   unary      := ('!' | '-') unary | postfix
//   postfix    := primary ('[' or ']')*
//   primary    := number | 'true' | 'false' | name | name '(' args ')' | '(' or ')'
//
// Values are numbers, booleans, lists of numbers, or missing (a name bound to nothing, an index past the end).
// How evaluation treats them, precisely:
// - Arithmetic and comparison take numbers; missing reads as NaN. NaN follows IEEE 754: arithmetic with it is NaN,
//   `<`, `<=`, `>`, `>=` and `==` with it are false, `!=` with it is true. Nothing throws because of NaN.
// - `==` and `!=` also compare two booleans. `&&`, `||` and `!` take booleans and short-circuit.
// - Providers answer one number for one series and a list for several, so the two read alike where they can: a
//   number indexes as a list of one (`result[0]`), and a list of one number (or none) reads as that number (or NaN).
//   A longer list must be indexed or reduced (`min(result)`) before arithmetic or comparison.
// - Any other mix of types is an `ExpressionTypeError` naming the position: a mistake in the expression, not a
//   property of the data.
// Functions: `isNaN(x)` (x is NaN, missing, or a list holding NaN), `len(x)` (list length; 1 for a number, 0 for
// missing), `min`, `max`, `avg`, `sum` (over a list, or a number itself; NaN for missing or an empty list), `abs(x)`.

export type Value = number | boolean | readonly number[] | undefined;

/** The expression text could not be parsed; `position` is the 0-based offset of the offending character. */
export class ExpressionSyntaxError extends Error {
  override name = 'ExpressionSyntaxError';
  constructor(
    readonly source: string,
    readonly position: number,
    problem: string,
  ) {
    super(`${problem} at position ${position} of \`${source}\``);
  }
}

/** The expression parsed, but combines values of the wrong kinds (a list compared with a number, `!` of a number). */
export class ExpressionTypeError extends Error {
  override name = 'ExpressionTypeError';
  constructor(
    readonly source: string,
    readonly position: number,
    problem: string,
  ) {
    super(`${problem} at position ${position} of \`${source}\``);
  }
}

// ---- tokens -------------------------------------------------------------------------------------------

type TokenKind = 'number' | 'name' | 'operator' | 'end';

interface Token {
  kind: TokenKind;
  text: string;
  position: number;
}

const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '!', '(', ')', '[', ']', ','];
const NUMBER = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let position = 0;
  while (position < source.length) {
    const rest = source.slice(position);
    const space = /^\s+/.exec(rest);
    if (space) {
      position += space[0].length;
      continue;
    }
    const number = NUMBER.exec(rest);
    const name = number ? null : NAME.exec(rest);
    const operator = number || name ? undefined : OPERATORS.find((op) => rest.startsWith(op));
    const text = number?.[0] ?? name?.[0] ?? operator;
    if (text === undefined) throw new ExpressionSyntaxError(source, position, `unexpected character '${rest[0]}'`);
    tokens.push({ kind: number ? 'number' : name ? 'name' : 'operator', text, position });
    position += text.length;
  }
  tokens.push({ kind: 'end', text: 'end of expression', position });
  return tokens;
}

// ---- syntax tree --------------------------------------------------------------------------------------

type BinaryOperator = '&&' | '||' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/' | '%';

type Node =
  | { kind: 'number'; value: number; position: number }
  | { kind: 'boolean'; value: boolean; position: number }
  | { kind: 'name'; name: string; position: number }
  | { kind: 'unary'; operator: '!' | '-'; operand: Node; position: number }
  | { kind: 'binary'; operator: BinaryOperator; left: Node; right: Node; position: number }
  | { kind: 'index'; target: Node; index: Node; position: number }
  | { kind: 'call'; name: FunctionName; args: Node[]; position: number };

type FunctionName = keyof typeof FUNCTIONS;

/** A parsed expression, ready to evaluate any number of times. */
export interface Expression {
  readonly source: string;
  /** The variable names it reads, so a template can be checked before it runs. */
  readonly names: ReadonlySet<string>;
  evaluate(variables: Readonly<Record<string, Value>>): Value;
}

const LEVELS: readonly (readonly BinaryOperator[])[] = [['||'], ['&&'], ['==', '!='], ['<', '<=', '>', '>='], ['+', '-'], ['*', '/', '%']];

class Parser {
  private index = 0;
  readonly names = new Set<string>();

  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  parse(): Node {
    if (this.peek().kind === 'end') throw this.error(this.peek(), 'empty expression');
    const node = this.binary(0);
    const next = this.peek();
    if (next.kind !== 'end') throw this.error(next, `unexpected '${next.text}' after a complete expression`);
    return node;
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private take(): Token {
    const token = this.tokens[this.index]!;
    if (token.kind !== 'end') this.index += 1;
    return token;
  }

  private expect(text: string, context: string): Token {
    const token = this.peek();
    if (token.kind !== 'operator' || token.text !== text) throw this.error(token, `expected '${text}' ${context}, found '${token.text}'`);
    return this.take();
  }

  private error(token: Token, problem: string): ExpressionSyntaxError {
    return new ExpressionSyntaxError(this.source, token.position, problem);
  }

  /** One precedence level: operands of the next tighter level joined left to right by this level's operators. */
  private binary(level: number): Node {
    if (level === LEVELS.length) return this.unary();
    let left = this.binary(level + 1);
    while (this.peek().kind === 'operator' && LEVELS[level]!.includes(this.peek().text as BinaryOperator)) {
      const operator = this.take();
      const right = this.binary(level + 1);
      left = { kind: 'binary', operator: operator.text as BinaryOperator, left, right, position: operator.position };
    }
    return left;
  }

  private unary(): Node {
    const token = this.peek();
    if (token.kind === 'operator' && (token.text === '!' || token.text === '-')) {
      this.take();
      return { kind: 'unary', operator: token.text, operand: this.unary(), position: token.position };
    }
    return this.postfix();
  }

  private postfix(): Node {
    let node = this.primary();
    while (this.peek().kind === 'operator' && this.peek().text === '[') {
      const open = this.take();
      const index = this.binary(0);
      this.expect(']', 'to close the index');
      node = { kind: 'index', target: node, index, position: open.position };
    }
    return node;
  }

  private primary(): Node {
    const token = this.take();
    if (token.kind === 'number') return { kind: 'number', value: Number(token.text), position: token.position };
    if (token.kind === 'name') {
      if (token.text === 'true' || token.text === 'false') return { kind: 'boolean', value: token.text === 'true', position: token.position };
      if (this.peek().kind === 'operator' && this.peek().text === '(') return this.call(token);
      this.names.add(token.text);
      return { kind: 'name', name: token.text, position: token.position };
    }
    if (token.kind === 'operator' && token.text === '(') {
      const inner = this.binary(0);
      this.expect(')', 'to close the parenthesis');
      return inner;
    }
    throw this.error(token, token.kind === 'end' ? 'expression ends too early' : `unexpected '${token.text}'`);
  }

  private call(name: Token): Node {
    if (!Object.hasOwn(FUNCTIONS, name.text)) {
      throw this.error(name, `unknown function '${name.text}' (known: ${Object.keys(FUNCTIONS).join(', ')})`);
    }
    this.expect('(', `after '${name.text}'`);
    const args: Node[] = [];
    if (!(this.peek().kind === 'operator' && this.peek().text === ')')) {
      args.push(this.binary(0));
      while (this.peek().kind === 'operator' && this.peek().text === ',') {
        this.take();
        args.push(this.binary(0));
      }
    }
    this.expect(')', `to close the arguments of '${name.text}'`);
    if (args.length !== 1) throw this.error(name, `'${name.text}' takes 1 argument, got ${args.length}`);
    return { kind: 'call', name: name.text as FunctionName, args, position: name.position };
  }
}

// ---- evaluation ---------------------------------------------------------------------------------------

function describe(value: Value): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a list of ${value.length} numbers`;
}

/** A list's numbers, or a number as a list of one; missing is an empty list. */
function numbersOf(value: number | readonly number[] | undefined): readonly number[] {
  if (value === undefined) return [];
  return typeof value === 'number' ? [value] : value;
}

function reduce(values: readonly number[], combine: (a: number, b: number) => number): number {
  return values.length === 0 ? Number.NaN : values.reduce(combine);
}

/** Functions take a number, a list or missing; each is total over those, so NaN never makes one throw. */
const FUNCTIONS = {
  isNaN: (x: number | readonly number[] | undefined): boolean => x === undefined || numbersOf(x).some(Number.isNaN),
  len: (x: number | readonly number[] | undefined): number => numbersOf(x).length,
  min: (x: number | readonly number[] | undefined): number => reduce(numbersOf(x), (a, b) => Math.min(a, b)),
  max: (x: number | readonly number[] | undefined): number => reduce(numbersOf(x), (a, b) => Math.max(a, b)),
  sum: (x: number | readonly number[] | undefined): number => reduce(numbersOf(x), (a, b) => a + b),
  avg: (x: number | readonly number[] | undefined): number => reduce(numbersOf(x), (a, b) => a + b) / numbersOf(x).length,
  abs: (x: number | readonly number[] | undefined): number => (typeof x === 'number' ? Math.abs(x) : Number.NaN),
} as const;

class Evaluator {
  constructor(
    private readonly source: string,
    private readonly variables: Readonly<Record<string, Value>>,
  ) {}

  private typeError(node: Node, problem: string): ExpressionTypeError {
    return new ExpressionTypeError(this.source, node.position, problem);
  }

  /** A number operand: missing reads as NaN; a boolean or an unreduced list is a mistake in the expression. */
  private number(node: Node, role: string): number {
    return this.asNumber(node, this.value(node), role);
  }

  private asNumber(node: Node, value: Value, role: string): number {
    if (value === undefined) return Number.NaN;
    if (typeof value === 'number') return value;
    if (typeof value === 'object' && value.length <= 1) return value[0] ?? Number.NaN;
    const hint = typeof value === 'boolean' ? '' : ': index it (x[0]) or reduce it (min(x), max(x), avg(x))';
    throw this.typeError(node, `${role} must be a number, got ${describe(value)}${hint}`);
  }

  private boolean(node: Node, role: string): boolean {
    const value = this.value(node);
    if (typeof value !== 'boolean') throw this.typeError(node, `${role} must be a boolean, got ${describe(value)}`);
    return value;
  }

  value(node: Node): Value {
    switch (node.kind) {
      case 'number':
      case 'boolean':
        return node.value;
      case 'name':
        if (!Object.hasOwn(this.variables, node.name)) {
          throw this.typeError(node, `unknown name '${node.name}' (known: ${Object.keys(this.variables).join(', ') || 'none'})`);
        }
        return this.variables[node.name];
      case 'unary':
        return node.operator === '!' ? !this.boolean(node.operand, "the operand of '!'") : -this.number(node.operand, "the operand of '-'");
      case 'index':
        return this.indexed(node.target, node.index);
      case 'call':
        return this.call(node);
      case 'binary':
        return this.binary(node);
    }
  }

  private indexed(targetNode: Node, indexNode: Node): Value {
    const target = this.value(targetNode);
    const index = this.number(indexNode, 'an index');
    if (typeof target === 'boolean') throw this.typeError(targetNode, `only a list or a number can be indexed, got ${describe(target)}`);
    if (!Number.isInteger(index) || index < 0) throw this.typeError(indexNode, `an index must be a whole number of 0 or more, got ${index}`);
    return numbersOf(target)[index];
  }

  private call(node: Extract<Node, { kind: 'call' }>): Value {
    const argument = this.value(node.args[0]!);
    if (typeof argument === 'boolean') throw this.typeError(node.args[0]!, `'${node.name}' takes a number or a list, got ${describe(argument)}`);
    return FUNCTIONS[node.name](argument);
  }

  private binary(node: Extract<Node, { kind: 'binary' }>): Value {
    const { operator, left, right } = node;
    const side = (which: string) => `the ${which} side of '${operator}'`;
    switch (operator) {
      case '&&':
        return this.boolean(left, side('left')) && this.boolean(right, side('right'));
      case '||':
        return this.boolean(left, side('left')) || this.boolean(right, side('right'));
      case '==':
      case '!=':
        return this.equality(node);
      default:
        return arithmetic(operator, this.number(left, side('left')), this.number(right, side('right')));
    }
  }

  private equality(node: Extract<Node, { kind: 'binary' }>): boolean {
    const left = this.value(node.left);
    const right = this.value(node.right);
    const equal =
      typeof left === 'boolean' || typeof right === 'boolean'
        ? this.bothBooleans(node, left, right)
        : this.asNumber(node.left, left, `the left side of '${node.operator}'`) ===
          this.asNumber(node.right, right, `the right side of '${node.operator}'`);
    return node.operator === '==' ? equal : !equal;
  }

  private bothBooleans(node: Extract<Node, { kind: 'binary' }>, left: Value, right: Value): boolean {
    if (typeof left !== 'boolean' || typeof right !== 'boolean') {
      throw this.typeError(node, `'${node.operator}' compares two numbers or two booleans, got ${describe(left)} and ${describe(right)}`);
    }
    return left === right;
  }
}

function arithmetic(operator: Exclude<BinaryOperator, '&&' | '||' | '==' | '!='>, a: number, b: number): Value {
  switch (operator) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return a / b;
    case '%':
      return a % b;
  }
}

/** Parses an expression; throws `ExpressionSyntaxError` naming the position of the first problem. */
export function parseExpression(source: string): Expression {
  const parser = new Parser(source, tokenize(source));
  const tree = parser.parse();
  return {
    source,
    names: parser.names,
    evaluate: (variables) => new Evaluator(source, variables).value(tree),
  };
}
