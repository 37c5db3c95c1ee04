package v1

import "unicode"

// PrintableRule is the CEL rule that refuses, in a stored identifier, the
// characters UnprintableAt finds: controls (NUL, ESC, newlines, C1),
// format characters (bidi overrides, zero-width), private use, and line
// and paragraph separators. Each would make `kubectl get`, logs or a
// terminal show something other than the value (an ESC sequence rewrites
// the screen). The receiver refuses the same set before it stores
// anything; TestPrintableRuleMatchesUnprintableAt keeps the two in step.
const PrintableRule = `!self.matches(r'[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}]')`

var unprintable = []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp}

// UnprintableAt returns the byte index of the first character of s that
// no identifier may hold (see PrintableRule), or -1.
func UnprintableAt(s string) int {
	for i, r := range s {
		if unicode.In(r, unprintable...) {
			return i
		}
	}
	return -1
}
