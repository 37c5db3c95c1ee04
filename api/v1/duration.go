package v1

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of time in a ConnectApp's spec, written as Go's
// time.ParseDuration reads it: `30s`, `1h30m`, `720h`.
//
// It holds the text the API server stored, not a parsed value, and
// decoding it never fails: a ConnectApp whose duration Go cannot read (one
// stored before the CRD's CEL bounds existed, or under a CRD installed
// without them, e.g. `2562048h`, which overflows time.ParseDuration) would
// otherwise fail the decoding of every typed List of ConnectApps, so the
// informer would never sync and one namespace's app would stop the
// operator for every app (issue 11 item 4). Instead the app's getters
// report the value's error (ConnectApp.SpecError), the app controller
// reports the app InvalidSpec and the operator refuses to act on that app
// alone.
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
type Duration string

// DurationOf is d as a spec value.
func DurationOf(d time.Duration) *Duration {
	s := Duration(short(d))
	return &s
}

// short is d as a person writes it: `720h`, not time's `720h0m0s`.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Parse reads the duration. A value that is not a Go duration (or not a
// JSON string at all) is an error; the zero value is unset, also an error.
func (d Duration) Parse() (time.Duration, error) {
	if d == "" {
		return 0, fmt.Errorf("no duration given")
	}
	v, err := time.ParseDuration(string(d))
	if err != nil {
		// time's message quotes the whole value; the value is quoted
		// once, bounded, by the caller.
		return 0, fmt.Errorf("not a duration Go can read")
	}
	return v, nil
}

// UnmarshalJSON keeps any JSON value: a string as it is, anything else
// (only possible under a schema other than this CRD's) as its JSON text,
// which Parse then refuses. It never fails, so one unreadable value cannot
// fail the decoding of the object, or of a List holding it.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*d = Duration(s)
		return nil
	}
	if string(data) == "null" {
		*d = ""
		return nil
	}
	*d = Duration(data)
	return nil
}

// quoted is the value for a message: quoted, control characters escaped,
// at most 40 bytes of it, so a hostile value cannot flood a condition or
// a log line.
func (d Duration) quoted() string {
	s := string(d)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// durationOr is the effective value of the duration field at path: def
// when unset, the parsed value when set. A value that cannot be read is an
// error naming the field, the value and the fix; the duration returned
// with it is def, for a caller that must show something, but nothing may
// act on it (the operator refuses to act on such an app at all). The fix
// never states the bounds: applying the object again makes the API server
// name them, from the CRD's CEL rules, their one home.
func durationOr(path string, d *Duration, def time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	v, err := d.Parse()
	if err != nil {
		return def, fmt.Errorf("%s: %s is %v (set one such as %s, the default, or remove the field, and apply the ConnectApp again: the API server names the bounds)",
			path, d.quoted(), err, short(def))
	}
	return v, nil
}
