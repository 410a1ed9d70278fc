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

// ---------------------------------------------------------------------------------------------
// hacking, exploits, bypassing security: requests only
// ---------------------------------------------------------------------------------------------

/**
 * Words that make what follows a request: "how do I …", "show me ways to …", "can you …", or
 * the start of a sentence (an imperative). "How do hackers exploit …" (a topic) is not one.
 */
const request = String.raw`(?:(?:^|[.!?;:\n]\s*)(?:(?:please|pls|now|so|ok|okay)\s+)?|\b(?:how\s+(?:do|can|could|would|should|might|will)\s+(?:i|we|you|one|someone|u)|how\s+(?:to|i\s+can|can\s+i)|help\s+me(?:\s+to)?|teach\s+me(?:\s+how)?(?:\s+to)?|show\s+me(?:\s+(?:how|ways?|the\s+best\s+way))?(?:\s+to)?|explain\s+(?:to\s+me\s+)?how\s+to|tell\s+me\s+how\s+to|(?:best\s+|easiest\s+|simple\s+)?(?:ways?|steps?|methods?|tips)\s+(?:to|for)|(?:a\s+)?(?:guide|tutorial|instructions)\s+(?:on|for|to)(?:\s+how\s+to)?|i\s+(?:want|need|wanna|would\s+like)\s+to|can\s+(?:you|u)|could\s+you|would\s+you|please|let'?s|is\s+it\s+possible\s+to|what'?s\s+the\s+(?:best|easiest)\s+way\s+to)\s+(?:[\w'’-]+\s+){0,3}?)`

const owner = String.raw`(?:my|his|her|their|your|our|a|an|the|this|that|these|those|some|any|someone'?s?|somebody'?s|other|another|people'?s|other\s+people'?s|[\w-]+'s|[\w-]+s')`
const target = String.raw`(?:wi-?fi|wireless|network|router|phone|iphone|android|computer|pc|laptop|mac|account|email|e-mail|inbox|server|website|web\s*site|site|database|db|camera|webcam|cctv|system|instagram|facebook|snapchat|whatsapp|gmail|icloud|twitter|tiktok|bank|atm|car|wallet|device|school|company|government|grades?)s?`

const hacking = String.raw`(?:hack(?:ing)?\s+(?:into|in\s+to)\b|hack(?:ing)?\s+(?:${owner}\s+){1,2}(?:[\w'-]+\s+)?${target}\b|break(?:ing)?\s+into\s+(?:${owner}\s+){1,2}(?:[\w'-]+\s+)?${target}\b|crack(?:ing)?\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+)?(?:passwords?|passcodes?|wi-?fi|wpa2?|wep|hash(?:es)?|pins?|accounts?|encryption|${target})\b)`

const weakness = String.raw`(?:vulnerabilit(?:y|ies)|vulns?|sql\s*injections?|sqli|xss|cross-site\s+scripting|buffer\s+overflows?|zero-?days?|0-?days?|cve-\d{4}-\d{1,7}|rce|remote\s+code\s+execution|bugs?|flaws?|weakness(?:es)?|loopholes?|misconfigurations?|log4shell|heartbleed|eternalblue)`
const exploiting = String.raw`(?:brute[\s-]?forc(?:e|ing)\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+)?(?:logins?|passwords?|accounts?|pins?|hash(?:es)?|ssh|rdp|servers?|sites?|pages?|wi-?fi)\b|exploit(?:ing)?\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+){0,2}?${weakness}|(?:do|perform|use|run|carry\s+out|pull\s+off|launch|execute|inject)\s+(?:an?\s+|the\s+)?(?:sql\s*injection|sqli|xss|ddos|dos\s+attack|brute[\s-]?force(?:\s+attack)?|man-in-the-middle(?:\s+attack)?|mitm(?:\s+attack)?|privilege\s+escalation|credential\s+stuffing)\b(?:\s+(?:attack|on|against))?)`

const protection = String.raw`(?:security|lock\s*screens?|screen\s*locks?|passcodes?|passwords?|authentication|auth|2fa|two[\s-]factor(?:\s+authentication)?|mfa|logins?|antivirus|anti-virus|firewalls?|edr|captchas?|drm|activation\s+lock|icloud\s+lock|frp|detection|encryption|bitlocker|filevault|license\s+checks?|paywalls?|content\s+filters?|parental\s+controls?)`
const bypassing = String.raw`(?:(?:bypass(?:ing)?|circumvent(?:ing)?|get(?:ting)?\s+(?:around|past)|defeat(?:ing)?|evad(?:e|ing)|break(?:ing)?)\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+){0,2}?${protection}|disabl(?:e|ing)\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+)?(?:antivirus|anti-virus|edr|security\s+cameras?))\b`

const malwareVerbs = String.raw`(?:create|write|make|build|code|develop|program|spread|deploy|distribute|plant|install|inject|hide|send)`
const malwareThings = String.raw`(?:viruse?s?|worms?|malware|ransomware|keyloggers?|key\s+loggers?|trojans?|rootkits?|botnets?|spyware|stalkerware|backdoors?|rats?|remote\s+access\s+trojans?|cryptominers?|infostealers?|payloads?|shellcode|exploits?)`
const malwareSpreading = String.raw`(?:${malwareVerbs}(?:ing)?\s+(?:${owner}\s+|me\s+|us\s+|working\s+|new\s+|custom\s+|undetectable\s+|fud\s+|simple\s+|python\s+|powershell\s+){0,3}(?:[\w'-]+\s+)?${malwareThings}\b(?!\s*(?:removal|removers?|scanners?|protection|detection|definitions))|infect(?:ing)?\s+(?:${owner}\s+){0,2}(?:[\w'-]+\s+)?${target}\s+with\b)`

const asRequest = (body: string) => rx(String.raw`${request}${body}`)

const exploitRequest = asRequest(exploiting)
// "write an exploit for CVE-2021-44228" is a request wherever it stands
const exploitAuthoring = rx(
  String.raw`\b(?:write|create|build|develop|code|make|craft|generate|give\s+me)\s+(?:me\s+|us\s+)?(?:an?\s+|the\s+|some\s+)?(?:working\s+|functional\s+|reliable\s+|new\s+|weaponi[sz]ed\s+|remote\s+)?(?:exploits?|shellcode|zero-?days?|0-?days?)\b(?!\s+(?:detection|mitigation|report))`
)

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
    category: "hacking",
    rule: "hacking-request",
    test: asRequest(hacking)
  },
  {
    category: "hacking",
    rule: "unauthorized-access",
    test: rx(String.raw`\b(?:gain|get|obtain)(?:ing)?\s+unauthori[sz]ed\s+access\b`)
  },
  {
    category: "exploits",
    rule: "exploit-request",
    test: (text) =>
      exploitRequest.test(text) ||
      exploitAuthoring.test(text)
  },
  {
    category: "security-bypass",
    rule: "bypass-security",
    test: asRequest(bypassing)
  },
  {
    category: "malware",
    rule: "malware-request",
    test: asRequest(malwareSpreading)
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
