/**
 * The built-in PII recognizers. Each pattern is bounded (every quantifier has a maximum), has
 * no nested ambiguous repetition, refuses to start in the middle of a word or number
 * (lookbehind of one or two characters) and is followed by a validator where shape alone
 * would give false positives (Luhn, SSN area rules, IBAN mod-97, phone metadata).
 *
 * Every pattern refuses to start right after "]", the last character of every marker, as it
 * refuses to start right after a letter or digit (the last character of every match), and a
 * lookahead that refuses "." or "-" before a digit or letter refuses it before "[" too: so a
 * redacted text redacts to itself.
 *
 * `maxLength` is an upper bound of the characters a pattern examines from the start of a
 * match, lookahead included; `alphabet` holds every character a match can consume, and no
 * lookahead reads past the first character outside it (see `redaction.ts`).
 *
 * @internal
 */
import {
  type CountryCode,
  getCountryCallingCode,
  isSupportedCountry,
  Metadata,
  parsePhoneNumberFromString
} from "libphonenumber-js/max"
import { type RecognizerSpec, requiredCharacter } from "./redaction.js"
import { ianaTlds, tldListDate } from "./tlds.js"

// ---------------------------------------------------------------------------------------------
// email
// ---------------------------------------------------------------------------------------------

const localChar = String.raw`[\p{L}\p{N}\p{M}_.%+'\-]`
const label = String.raw`[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}\-]{0,61}[\p{L}\p{N}\p{M}])?`

const emailPattern = new RegExp(
  String.raw`(?<!${localChar}|\])[\p{L}\p{N}_]${localChar}{0,63}@(?:${label}\.){1,6}(?:\p{L}[\p{L}\p{M}]{1,62}|xn--[a-z0-9\-]{1,59})(?![\p{L}\p{N}\p{M}_\-]|[.:][\p{L}\p{N}\[]|:[\/~])`,
  "u"
)
requiredCharacter.set(emailPattern, /@/)

/**
 * Practical addresses: a local part of up to 64 letters, digits, marks and `_.%+'-` (starting
 * with a letter, digit or `_`), `@`, one to six dot-terminated labels and a top-level label
 * that is an IANA top-level domain (`ianaTlds`, or one of `extraTlds`): `icon@2x.png` is a file
 * name. Internationalized letters are accepted. Quoted local parts and IP-literal domains are
 * not, nor `user@host:path` (an scp or git remote).
 */
export const makeEmail = (extraTlds: ReadonlyArray<string> = []): RecognizerSpec & { readonly fingerprint: string } => {
  const extra = new Set(extraTlds.map((t) => t.toLowerCase().replace(/^\./, "")))
  const known = (tld: string) => ianaTlds.has(tld) || extra.has(tld)
  return {
    kind: "email",
    marker: "[EMAIL]",
    pattern: emailPattern,
    // local 64 + "@" + 6 labels of 64 + top label 63 + lookahead 2
    maxLength: 64 + 1 + 6 * 64 + 63 + 2,
    // ":" is read by the lookahead ("git@host:org/repo" is an scp path, not an address)
    alphabet: /[\p{L}\p{N}\p{M}_.%+'\-@:]/u,
    start: /[\p{L}\p{N}_]/u,
    validate: (match) => known(match.slice(match.lastIndexOf(".") + 1).toLowerCase()),
    // the verdicts depend on the list, which the validate source does not show
    fingerprint: `tlds ${tldListDate} ${ianaTlds.size} ${Array.from(extra).sort().join(",")}`
  }
}

/** Email addresses with the IANA top-level domains. */
export const email = makeEmail()

// ---------------------------------------------------------------------------------------------
// payment cards
// ---------------------------------------------------------------------------------------------

/** Luhn check over a string of ASCII digits. */
export const luhn = (digits: string): boolean => {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

const isCardNumber = (text: string): boolean => {
  const digits = text.replace(/[ \-]/g, "")
  const first = digits.charCodeAt(0)
  return digits.length >= 13 && digits.length <= 19 && first >= 50 && first <= 54 && luhn(digits)
}

/**
 * Card numbers of 13 to 19 digits: unseparated, in groups of four (`4111 1111 1111 1111`,
 * dashes or spaces, used consistently) or 4-6-5 / 4-6-4 (American Express, Diners). The
 * number must pass the Luhn check and start with 2–6 (the issuer ranges of the card networks).
 */
export const card: RecognizerSpec = {
  kind: "card",
  marker: "[CARD]",
  pattern:
    /(?<![\p{L}\p{N}_\-\]])(?:\d{13,19}|\d{4}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{4}([ \-])\d{6}\2\d{4,5})(?![\p{L}\p{N}_]|-[\d\[])/u,
  // 4+1+4+1+4+1+4+1+3 = 23, lookahead 2
  maxLength: 25,
  alphabet: /[0-9 \-]/,
  start: /[0-9]/,
  validate: (match) => {
    // "4111 1111 1111 1111 123": a 16-digit card followed by another number is more likely
    // than a 19-digit card, so the four-group reading wins when it is valid
    const fiveGroups = /^(\d{4}([ \-])\d{4}\2\d{4}\2\d{4})\2\d{1,3}$/.exec(match)
    if (fiveGroups !== null && isCardNumber(fiveGroups[1]!)) return fiveGroups[1]!.length
    return isCardNumber(match)
  }
}

// ---------------------------------------------------------------------------------------------
// US social security numbers
// ---------------------------------------------------------------------------------------------

/** Numbers printed on sample cards and in advertising, used by many people as their own. */
const advertisedSsns = new Set(["078051120", "219099999"])

/** Nine digits after a label: "SSN 123456789", "SSN: 123456789", "my SSN is 123456789". */
const afterLabel = (labels: string) =>
  String.raw`(?<=\b(?:${labels})(?:\s?[:#=]\s?|\s(?:is|was|number|no\.?|#)?\s?[:#]?\s?|\s(?:number|no\.?)\s(?:is|was)\s))\d{9}(?![\p{L}\p{N}_])`

const nineDigitPattern = (labels: string) =>
  new RegExp(
    String.raw`(?<![\p{L}\p{N}_.\-\]])\d{3}([\- ])\d{2}\1\d{4}(?![\p{L}\p{N}_]|[.\-][\d\[])|${afterLabel(labels)}`,
    "iu"
  )

/**
 * US SSNs written `123-45-6789` or `123 45 6789`, or nine bare digits after "SSN" or
 * "social security (number|no|#)" (optionally "is"). Numbers the SSA never issues are not
 * matched: area 000, 666 or 900–999 (900–999 are ITINs), group 00, serial 0000; nor the two
 * numbers printed in advertising (078-05-1120, 219-09-9999).
 */
export const ssn: RecognizerSpec = {
  kind: "ssn",
  marker: "[SSN]",
  pattern: nineDigitPattern("ssn|social security(?: number| no\\.?| #)?"),
  maxLength: 13,
  alphabet: /[0-9 .\-]/,
  start: /[0-9]/,
  validate: (match) => {
    const digits = match.replace(/[ \-]/g, "")
    const area = digits.slice(0, 3)
    return area !== "000" && area !== "666" && digits[0] !== "9" && digits.slice(3, 5) !== "00" &&
      digits.slice(5) !== "0000" && !advertisedSsns.has(digits)
  }
}

/**
 * US individual taxpayer identification numbers (ITIN), written like SSNs or as nine digits
 * after "ITIN": area 900–999 and group 50–65, 70–88, 90–92 or 94–99 (the IRS ranges).
 */
export const itin: RecognizerSpec = {
  kind: "itin",
  marker: "[ITIN]",
  pattern: nineDigitPattern("itin|taxpayer identification(?: number| no\\.?| #)?"),
  maxLength: 13,
  alphabet: /[0-9 .\-]/,
  start: /[0-9]/,
  validate: (match) => {
    const digits = match.replace(/[ \-]/g, "")
    const group = Number(digits.slice(3, 5))
    return digits[0] === "9" &&
      ((group >= 50 && group <= 65) || (group >= 70 && group <= 88) || (group >= 90 && group <= 92) ||
        group >= 94) && digits.slice(5) !== "0000"
  }
}

// ---------------------------------------------------------------------------------------------
// IBAN
// ---------------------------------------------------------------------------------------------

/** Length of the IBAN of each country that issues them (SWIFT IBAN registry). */
const ibanLengths: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28,
  IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20,
  LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28,
  NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24,
  SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26,
  UA: 29, VA: 22, VG: 24, XK: 20, YE: 30
}

/** ISO 13616 mod-97 check of an IBAN without spaces. */
const ibanChecksum = (iban: string): boolean => {
  const rearranged = iban.slice(4) + iban.slice(0, 4)
  let rem = 0
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i)
    const v = c <= 57 ? c - 48 : c - 55 // "A" → 10
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97
  }
  return rem === 1
}

/**
 * IBANs in upper case, with or without spaces (`DE89 3704 0044 0532 0130 00`): a known country
 * code, exactly that country's length, and a valid mod-97 check. The candidate may run on into
 * following upper-case words; only the IBAN itself, ending at a space or the candidate's end,
 * is replaced.
 */
export const iban: RecognizerSpec = {
  kind: "iban",
  marker: "[IBAN]",
  pattern: /(?<![\p{L}\p{N}_\]])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\p{L}\p{N}_])/u,
  // 4 + 30 * 2 + lookahead 1
  maxLength: 65,
  alphabet: /[A-Z0-9 ]/,
  start: /[A-Z]/,
  validate: (match) => {
    const length = ibanLengths[match.slice(0, 2)]
    if (length === undefined) return false
    let seen = 0
    let end = 0
    while (end < match.length && seen < length) {
      if (match.charCodeAt(end) !== 32) seen++
      end++
    }
    if (seen < length || (end < match.length && match.charCodeAt(end) !== 32)) return false
    return ibanChecksum(match.slice(0, end).replace(/ /g, "")) ? end : false
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------------------------

const octet = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`

/** Words after which a dotted quad is a version number: "version 1.2.3.4", "build 10.0.19041.1". */
const versionWord = String.raw`(?<!\b(?:version|ver|v|release|rel|build|firmware|fw|revision|rev|section|sec|chapter|ch|clause|paragraph|para|§)\.?:?\s{0,2})`

/**
 * Dotted-quad IPv4 addresses (`192.168.0.1`, no leading zeros). Not matched inside a longer
 * dotted number (`1.2.3.4.5`), right after a letter (`v1.2.3.4`) or after a version or
 * section word (`version 1.2.3.4`, `build 1.2.3.4`, `section 4.5.3.1`); loopback `127.x` and
 * `0.0.0.0` are left, like `::1`.
 */
export const ipv4: RecognizerSpec = {
  kind: "ip",
  marker: "[IP]",
  pattern: new RegExp(
    String.raw`(?<![\p{L}\p{N}_.\]])${versionWord}(?:${octet}\.){3}${octet}(?![\p{L}\p{N}_]|\.[\d\[])`,
    "iu"
  ),
  maxLength: 17,
  alphabet: /[0-9.]/,
  start: /[0-9]/,
  // loopback (127/8) and "any" (0.0.0.0) are never a person's address, like "::1"
  validate: (match) => !match.startsWith("127.") && match !== "0.0.0.0"
}

/** Whether a candidate is a syntactically valid IPv6 address worth redacting. */
const validIpv6 = (candidate: string): boolean => {
  let text = candidate
  let extraGroups = 0
  const lastColon = text.lastIndexOf(":")
  if (text.indexOf(".", lastColon) > 0) {
    // embedded IPv4 tail (counts as two groups)
    const tail = text.slice(lastColon + 1).split(".")
    if (tail.length !== 4 || tail.some((o) => !/^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(o))) return false
    text = text.slice(0, lastColon + 1) + "0"
    extraGroups = 1
  }
  const halves = text.split("::")
  if (halves.length > 2) return false
  const groupsOf = (half: string) => (half === "" ? [] : half.split(":"))
  const groups = halves.flatMap(groupsOf)
  if (groups.some((g) => !/^[0-9A-Fa-f]{1,4}$/.test(g))) return false
  const count = groups.length + extraGroups
  if (halves.length === 1 ? count !== 8 : count > 7) return false
  // "a::b" or "::1" are more often code or loopback than a personal address
  const hexDigits = groups.reduce((n, g) => n + g.length, 0)
  return groups.length >= 2 && (hexDigits >= 4 || extraGroups > 0)
}

const ipv6Pattern =
  /(?<![\p{L}\p{N}_:.\]])(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?(?![\p{L}\p{N}_:]|\.[\d\[])/u
// at least two groups after the first: every match holds a ":"
requiredCharacter.set(ipv6Pattern, /:/)

/**
 * IPv6 addresses, full (`2001:0db8:0000:0000:0000:ff00:0042:8329`), compressed
 * (`2001:db8::ff00:42:8329`, `fe80::1`) or with an IPv4 tail (`::ffff:192.0.2.1`). Times
 * (`10:30:45`), MAC addresses and `a::b`-like code are not matched.
 */
export const ipv6: RecognizerSpec = {
  kind: "ip",
  marker: "[IP]",
  pattern: ipv6Pattern,
  // 4 + 7 * 5 + 15 + lookahead 2
  maxLength: 56,
  alphabet: /[0-9A-Fa-f:.]/,
  start: /[0-9A-Fa-f:]/,
  validate: (match) => {
    if (validIpv6(match)) return true
    // "fe80::1:" at the end of a clause: try without the trailing colon
    if (match.endsWith(":") && !match.endsWith("::")) return validIpv6(match.slice(0, -1)) ? match.length - 1 : false
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// phone numbers
// ---------------------------------------------------------------------------------------------

const looksLikeDate = /^(?:\d{4}[\-.]\d{1,2}[\-.]\d{1,2}|\d{1,2}[\-.]\d{1,2}[\-.]\d{2,4})$/
const yearAndSerial = /^(?:19|20)\d\d[\-\/]\d{4,8}$/

/** `+…`: possible for its country, and valid when the country is North American (code 1). */
const isInternational = (candidate: string): boolean => {
  const parsed = parsePhoneNumberFromString(candidate, { extract: false })
  return parsed !== undefined && (parsed.countryCallingCode === "1" ? parsed.isValid() : parsed.isPossible())
}

const northAmerican = /^(?:\+?1[ .\-]?)?(?:\(\d{3}\) ?|\d{3}[ .\-]?)\d{3}[ .\-]\d{4}$/

/** What a region's numbering plan allows, read once from libphonenumber-js metadata. */
interface Plan {
  readonly region: CountryCode
  /** Digit counts a national number may have, with up to two digits of trunk prefix. */
  readonly lengths: ReadonlySet<number>
  /** The region's international call prefix ("011", "00" …), anchored. */
  readonly idd: RegExp
  /** A North American Numbering Plan region (calling code 1). */
  readonly nanp: boolean
}

const planOf = (region: CountryCode): Plan => {
  const metadata = new Metadata()
  metadata.selectNumberingPlan(region)
  const plan = metadata.numberingPlan
  const lengths = new Set<number>()
  for (const n of plan?.possibleLengths() ?? []) lengths.add(n).add(n + 1).add(n + 2)
  const idd = plan?.IDDPrefix()
  return {
    region,
    lengths,
    idd: new RegExp(`^(?:${idd === undefined || idd === "" ? "00" : idd})`),
    nanp: getCountryCallingCode(region) === "1"
  }
}

/**
 * Whether a phone-shaped candidate is a phone number, by libphonenumber-js metadata. An
 * international number (`+…`) may be merely "possible" (right length for its country);
 * a national number must be valid in one of the regions, or possible if it is written like a
 * phone number (parenthesized area code, or the North American 3-3-4 grouping). Cheap checks
 * of the digit count come first: parsing costs about 15 µs.
 */
const isPhone = (candidate: string, plans: ReadonlyArray<Plan>): boolean => {
  if (looksLikeDate.test(candidate)) return false
  // dots with spaces or dashes ("10.0.0.1 06 12") is a list of numbers, not one phone number
  const national = candidate.replace(/^\+\d{1,3} /, "")
  if (national.includes(".") && /[ \-]/.test(national)) return false
  if (candidate.charCodeAt(0) === 43 /* + */) return isInternational(candidate)
  const digits = candidate.replace(/\D/g, "")
  // "0044 20 7946 0958": the international prefix most of the world dials
  if (digits.startsWith("00") && !digits.startsWith("000") && isInternational("+" + candidate.replace(/^\D*00/, ""))) {
    return true
  }
  // "2024-000123": a year and a serial number, a case or ticket number
  if (yearAndSerial.test(candidate)) return false
  const northAmericanShape = northAmerican.test(candidate)
  const shaped = northAmericanShape || candidate.includes("(")
  for (const plan of plans) {
    if (!plan.lengths.has(digits.length) && !plan.idd.test(digits)) continue
    const parsed = parsePhoneNumberFromString(candidate, { defaultCountry: plan.region, extract: false })
    if (parsed === undefined) continue
    if (parsed.isValid()) return true
    // North American numbers have assigned area codes and exchanges: shape is not enough
    // ("123-456-7890"); elsewhere a number written like a phone number may be merely possible
    if (shaped && !plan.nanp && parsed.countryCallingCode !== "1" && parsed.isPossible()) return true
  }
  return false
}

/** Verdicts of recent candidates, so repeated numbers are parsed once. Cleared when full. */
const makeMemo = () => {
  const memo = new Map<string, boolean>()
  return (key: string, compute: () => boolean): boolean => {
    const hit = memo.get(key)
    if (hit !== undefined) return hit
    const v = compute()
    if (memo.size >= 1024) memo.clear()
    memo.set(key, v)
    return v
  }
}

/**
 * Changes whenever what the built-in recognizers accept changes in code their patterns and
 * `validate` sources do not show (helpers, data): it feeds the policy fingerprint.
 */
export const revision = "2 (tlds, NANP validity, SSN exclusions, ITIN, version quads, 00 prefix)"

/** The regions used when none are configured. */
export const defaultPhoneRegions: ReadonlyArray<CountryCode> = ["US"]

/** Which of `regions` libphonenumber-js does not know. */
export const unknownRegions = (regions: ReadonlyArray<string>): ReadonlyArray<string> =>
  regions.filter((r) => !isSupportedCountry(r))

const phoneGroup = String.raw`(?:\(\d{1,5}\)|\d{1,15})`
/** International, or North American 3-3-4 with separators: may follow another number. */
const stronglyShaped = String.raw`\+\d|\(?\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}(?!\d)`

/**
 * Phone numbers: an optional `+`, then up to seven digit groups (one may be a parenthesized
 * area code) separated by one space, dot or dash: `+1 (212) 555-0123`, `212.555.0123`,
 * `+44 20 7946 0958`, `+33 6 12 34 56 78`, `2125550123`. A candidate of 7 to 17 digits is
 * checked with libphonenumber-js against `regions` (national numbers) or its own country code
 * (international ones); if the whole candidate is not a number, shorter candidates ending at
 * a space are tried (`212 555 0123 2 times`). A number is not matched after `#`, `$`, `€`,
 * `£`, `¥`, `%` or a letter, nor as the continuation of another number (after a digit and a
 * dot or dash), so order numbers, prices and amounts stay; dates and years are not
 * phone-shaped. Right after a digit and a space, only an international (`+…`) or North
 * American 3-3-4 number may start (`SSN 123-45-6789 212-555-0123`): this keeps the number of
 * candidates linear in a long run of digit groups.
 */
export const phone = (
  regions: ReadonlyArray<string> = defaultPhoneRegions
): RecognizerSpec & { readonly fingerprint: string } => {
  const plans = regions.filter((r): r is CountryCode => isSupportedCountry(r)).map(planOf)
  const memo = makeMemo()
  const check = (candidate: string) => memo(candidate, () => isPhone(candidate, plans))
  return {
    kind: "phone",
    marker: "[PHONE]",
    // the verdicts depend on the regions and the metadata, which the validate source does not show
    fingerprint: `phone ${plans.map((p) => p.region).join(",")}`,
    pattern: new RegExp(
      String.raw`(?<![\p{L}\p{N}\p{M}_+#@$€£¥%&=/\\.,\-\]]|[\p{N}\]][.\-]|[\p{N}\]]\))(?:(?<![\p{N}\]] )|(?=${stronglyShaped}))\+?${phoneGroup}(?:(?:(?<=\))[ .\-]?|(?<!\))[ .\-])${phoneGroup}){0,6}(?![\p{L}\p{N}\p{M}_@]|[.\-][\p{N}\[]|\([\p{N}\[])`,
      "u"
    ),
    // "+" 1 + first group 15 + 6 * (separator 1 + group 15) + lookahead 2
    maxLength: 1 + 15 + 6 * 16 + 2,
    alphabet: /[0-9 .\-()+]/,
    start: /[0-9(+]/,
    validate: (match) => {
      // candidate ends: the whole match, then each group end followed by a space, longest first
      let digits = 0
      for (let i = 0; i < match.length; i++) {
        const c = match.charCodeAt(i)
        if (c >= 48 && c <= 57) digits++
      }
      let end = match.length
      while (end > 0) {
        if (digits < 7) return false
        if (digits <= 17 && check(match.slice(0, end))) return end
        // step back to the previous group end that is followed by a space
        let i = end - 1
        for (; i > 0; i--) {
          const c = match.charCodeAt(i)
          if (c >= 48 && c <= 57) digits--
          if (c === 32) {
            const before = match.charCodeAt(i - 1)
            if ((before >= 48 && before <= 57) || before === 41 /* ) */) break
          }
        }
        end = i
      }
      return false
    }
  }
}
