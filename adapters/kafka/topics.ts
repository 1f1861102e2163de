// Kafka topic names for domain events: one topic per stream category, `<prefix>.<category>s.v1`.

/** The prefix of every topic Sentinel publishes to unless told otherwise. */
export const DEFAULT_TOPIC_PREFIX = 'sentinel';

/** A stream category: what comes before the first `-` of a stream name, in lower-case letters and digits. */
const CATEGORY = /^[a-z][a-z0-9]*$/;

/** What Kafka accepts in a topic name, less the characters Sentinel's own part of the name never uses. */
const TOPIC_PREFIX = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * The topic for a stream: its category made plural by a trailing `s` (`deployment-42` → `sentinel.deployments.v1`,
 * `policyset-global` → `sentinel.policysets.v1`). The `v1` names the message layout (key, headers, JSON value),
 * not the event schemas, which travel in each message's `ce_type`.
 */
export function topicOf(stream: string, prefix: string = DEFAULT_TOPIC_PREFIX): string {
  return `${checkedPrefix(prefix)}.${categoryOf(stream)}s.v1`;
}

/** The category of a stream named `<category>-<id>`; throws for a name of another shape. */
export function categoryOf(stream: string): string {
  const dash = stream.indexOf('-');
  const category = dash > 0 ? stream.slice(0, dash) : '';
  if (!CATEGORY.test(category) || dash === stream.length - 1) {
    throw new Error(
      `stream ${JSON.stringify(stream)} is not named <category>-<id> with a category of lower-case letters and digits ` +
        '(such as "deployment-42"); it has no Kafka topic',
    );
  }
  return category;
}

/** True for the topics `topicOf` names under this prefix, so that a publisher can find every one it wrote to. */
export function isEventTopic(topic: string, prefix: string = DEFAULT_TOPIC_PREFIX): boolean {
  const head = `${checkedPrefix(prefix)}.`;
  if (!topic.startsWith(head) || !topic.endsWith('s.v1')) return false;
  return CATEGORY.test(topic.slice(head.length, -'s.v1'.length));
}

function checkedPrefix(prefix: string): string {
  if (!TOPIC_PREFIX.test(prefix)) {
    throw new Error(`Kafka topic prefix ${JSON.stringify(prefix)} is not 1 to 200 of the characters a-z A-Z 0-9 . _ -`);
  }
  return prefix;
}
