/**
 * The default block rules. Each one looks for a request (a verb aimed at a harmful artefact,
 * or an instruction aimed at the model) rather than a topic, so that a customer describing
 * what happened to them ("my account was hacked", "I got a phishing email", "how do I remove
 * malware") passes. Patterns are bounded word sequences: linear time on any input.
 *
 * @internal
 */

/** What the engine needs from a block rule (the public `BlockRule` has this shape). */
export interface BlockRuleSpec {
  readonly category: string
  readonly rule: string
  readonly test: RegExp | ((text: string) => boolean)
}

const words = (list: ReadonlyArray<string>) => list.map((w) => w.replace(/ /g, String.raw`\s+`)).join("|")

/** Up to `max` filler words from `list` between a verb and its object. */
const fillers = (list: ReadonlyArray<string>, max: number) => String.raw`(?:(?:${words(list)})\s+){0,${max}}`

const makeVerbs = ["write", "create", "build", "code", "develop", "generate", "make", "program", "design"]

const malwareNouns = [
  "ransomware",
  "keylogger",
  "key logger",
  "malware",
  "trojan",
  "rootkit",
  "botnet",
  "spyware",
  "computer virus",
  "computer worm",
  "cryptojacker",
  "infostealer",
  "info-stealer",
  "remote access trojan"
]

const malwareFillers = [
  "me",
  "us",
  "a",
  "an",
  "some",
  "the",
  "working",
  "functional",
  "new",
  "custom",
  "simple",
  "basic",
  "advanced",
  "undetectable",
  "fud",
  "polymorphic",
  "self-replicating",
  "python",
  "powershell",
  "c",
  "c\\+\\+",
  "javascript",
  "windows",
  "android",
  "linux"
]

const phishingFillers = ["me", "us", "a", "an", "some", "the", "convincing", "realistic", "fake", "working", "cloned"]
const phishingNouns = [
  "phishing page",
  "phishing site",
  "phishing website",
  "phishing email",
  "phishing e-mail",
  "phishing kit",
  "phishing campaign",
  "phishing link",
  "credential harvester",
  "fake login page"
]

const victims = [
  "someone's",
  "someone",
  "somebody's",
  "other people's",
  "people's",
  "users'",
  "user",
  "their",
  "his",
  "her",
  "the",
  "victims'",
  "victim's",
  "a",
  "all",
  "saved",
  "stored",
  "browser",
  "employees'",
  "my coworker's",
  "my boss's",
  "my ex's"
]
const secrets = [
  "passwords?",
  "credentials",
  "login details",
  "login credentials",
  "session cookies",
  "session tokens",
  "cookies",
  "2fa codes",
  "otp codes",
  "credit card numbers",
  "card details"
]

const accountOwners = [
  "someone's",
  "someone",
  "somebody's",
  "another person's",
  "a person's",
  "his",
  "her",
  "their",
  "my ex's",
  "my wife's",
  "my husband's",
  "my girlfriend's",
  "my boyfriend's",
  "my partner's",
  "my boss's",
  "my coworker's",
  "a",
  "an"
]
const accounts = ["account", "email", "e-mail", "phone", "instagram", "facebook", "gmail", "icloud", "whatsapp", "snapchat"]

const rx = (source: string) => new RegExp(source, "iu")

const persona = rx(
  String.raw`\b(?:you\s+are\s+now|act\s+as|pretend\s+(?:to\s+be|you\s+are))\s+(?:an?\s+unrestricted\s+(?:AI|assistant|model|chatbot)|in\s+developer\s+mode)\b`
)
// "DAN" only in capitals: "act as Dan from sales" is a role, not a jailbreak
const dan = /\b(?:[Yy]ou\s+are\s+now|[Aa]ct\s+as|[Pp]retend\s+(?:to\s+be|you\s+are))\s+DAN\b/u

/** The rules used when the policy does not say otherwise. */
export const defaultBlockRules: ReadonlyArray<BlockRuleSpec> = [
  {
    category: "malware",
    rule: "malware-authoring",
    test: rx(String.raw`\b(?:${words(makeVerbs)})\s+${fillers(malwareFillers, 4)}(?:${words(malwareNouns)})\b`)
  },
  {
    category: "credential-theft",
    rule: "phishing-kit",
    test: rx(
      String.raw`\b(?:${words([...makeVerbs, "draft", "clone"])})\s+${fillers(phishingFillers, 3)}(?:${words(phishingNouns)})\b`
    )
  },
  {
    category: "credential-theft",
    rule: "credential-stealing",
    test: rx(String.raw`\b(?:steal|harvest|exfiltrate|sniff)(?:ing)?\s+${fillers(victims, 3)}(?:${words(secrets)})\b`)
  },
  {
    category: "credential-theft",
    rule: "account-takeover",
    test: rx(String.raw`\bhack(?:ing)?\s+into\s+${fillers(accountOwners, 2)}(?:${words(accounts)})\b`)
  },
  {
    category: "prompt-injection",
    rule: "ignore-instructions",
    test: rx(
      String.raw`\b(?:ignore|disregard|forget|override)\s+(?:(?:all|any|of|the|these|those)\s+){0,3}(?:(?:your|the)\s+)?(?:(?:previous|prior|above|preceding|earlier|system|initial|original)\s+)(?:instructions|prompts?|rules|directives|guidelines)\b|\b(?:ignore|disregard|forget)\s+(?:all\s+)?your\s+(?:instructions|rules|guidelines|programming|system\s+prompt)\b`
    )
  },
  {
    category: "prompt-injection",
    rule: "reveal-system-prompt",
    test: rx(
      String.raw`\b(?:reveal|print|show|repeat|output|display|leak|dump|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:(?:full|entire|exact|original|hidden|secret|initial)\s+){0,2}(?:system\s+(?:prompt|instructions?|message)|hidden\s+instructions|initial\s+prompt)\b`
    )
  },
  {
    category: "prompt-injection",
    rule: "jailbreak-persona",
    test: (text) => persona.test(text) || dan.test(text)
  }
]
