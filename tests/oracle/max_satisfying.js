// The semver oracle (docs/design/policies.md): what node-semver's maxSatisfying picks from a tag list, with tagwatch's
// documented candidate rules around it and nothing else:
//   - a tag outside the OCI tag grammar is never a candidate;
//   - with a variant, only tags whose suffix after the first '-' equals it, compared without it;
//   - one leading lowercase 'v' is removed, the rest must start with a digit and be valid (strict);
//   - among candidates of equal precedence to the maximum: compareBuild, then the byte-wise greater tag.
// Input on stdin: {"tags": [...], "cases": [{"range", "includePrerelease", "variant"}]}.
// Output on stdout: one JSON array, the chosen tag (or null) per case.
'use strict'
const semver = require('semver')

const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => { input += chunk })
process.stdin.on('end', () => {
  const { tags, cases } = JSON.parse(input)
  const unique = [...new Set(tags)].filter((tag) => TAG.test(tag))
  // Candidates per variant, parsed once (strict); maxSatisfying takes SemVer instances as well as
  // strings, so 10,000-tag lists times a hundred ranges stay fast.
  const candidatesByVariant = new Map()
  // Parsed with the case's options: node-semver re-parses a version whose options differ from the range's.
  const candidatesFor = (variant, options) => {
    const key = `${options.includePrerelease}:${variant || ''}`
    if (!candidatesByVariant.has(key)) {
      const candidates = []
      for (const tag of unique) {
        let text = tag
        if (variant) {
          const dash = text.indexOf('-')
          if (dash < 0 || text.slice(dash + 1) !== variant) continue
          text = text.slice(0, dash)
        }
        if (text.startsWith('v')) text = text.slice(1)
        if (!/^[0-9]/.test(text)) continue
        const version = semver.parse(text, options)
        if (version !== null) candidates.push({ tag, version })
      }
      candidatesByVariant.set(key, candidates)
    }
    return candidatesByVariant.get(key)
  }
  const results = cases.map(({ range, includePrerelease, variant }) => {
    const options = { includePrerelease: !!includePrerelease }
    const candidates = candidatesFor(variant, options)
    const max = semver.maxSatisfying(candidates.map((c) => c.version), range, options)
    if (max === null) return null
    const ties = candidates.filter((c) =>
      semver.compare(c.version, max, options) === 0 && semver.satisfies(c.version, range, options))
    ties.sort((a, b) =>
      semver.compareBuild(a.version, b.version, options) || Buffer.compare(Buffer.from(a.tag), Buffer.from(b.tag)))
    return ties[ties.length - 1].tag
  })
  process.stdout.write(JSON.stringify(results))
})
