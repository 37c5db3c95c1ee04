package v1_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

// TestDurationDecodesAnything decodes each kind of stored value into a
// typed ConnectApp, the way the operator's informers do (the JSON codec,
// and the unstructured converter the fake client and server-side apply
// use): decoding never fails, the text is kept as stored, and only the
// getter reports the value it cannot read, naming the field and the fix.
func TestDurationDecodesAnything(t *testing.T) {
	tests := []struct {
		name    string
		value   string // the JSON of spec.tenantPolicy.uninstalledRetention; "" omits it
		kept    connectv1.Duration
		want    time.Duration
		wantErr string
	}{
		{"valid", `"1h30m"`, "1h30m", 90 * time.Minute, ""},
		{"valid at the CEL bound", `"87600h"`, "87600h", 87600 * time.Hour, ""},
		{"zero", `"0s"`, "0s", 0, ""},
		{"unset is the default", ``, "", connectv1.DefaultUninstalledRetention, ""},
		{"null is unset", `null`, "", connectv1.DefaultUninstalledRetention, ""},
		{"overflow (issue 11 item 4)", `"2562048h"`, "2562048h", 0, `"2562048h" is not a duration Go can read`},
		{"overflow in seconds", `"9223372037s"`, "9223372037s", 0, `"9223372037s" is not a duration Go can read`},
		{"garbage", `"30d"`, "30d", 0, `"30d" is not a duration Go can read`},
		{"empty", `""`, "", 0, "no duration given"},
		{"a number, not a string", `42`, "42", 0, `"42" is not a duration Go can read`},
		{"an object", `{"a":1}`, `{"a":1}`, 0, `"{\"a\":1}" is not a duration Go can read`},
		{"control characters are escaped", `"1h\u001b[31m"`, "1h\x1b[31m", 0, `"1h\x1b[31m" is not`},
		{"a long value is cut", `"` + strings.Repeat("9", 100) + `h"`, connectv1.Duration(strings.Repeat("9", 100) + "h"), 0, strings.Repeat("9", 40) + `…"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := `{}`
			if tt.value != "" {
				policy = `{"uninstalledRetention":` + tt.value + `}`
			}
			doc := `{"apiVersion":"connect.tenantry.dev/v1","kind":"ConnectApp","metadata":{"name":"a","namespace":"default"},` +
				`"spec":{"key":"com.example.a","baseUrl":"https://connect.example.com/a","tenantPolicy":` + policy + `}}`
			var list connectv1.ConnectAppList
			if err := json.Unmarshal([]byte(`{"items":[`+doc+`]}`), &list); err != nil {
				t.Fatalf("a List holding the value does not decode: %v", err)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(doc), &raw); err != nil {
				t.Fatal(err)
			}
			var converted connectv1.ConnectApp
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &converted); err != nil {
				t.Fatalf("the unstructured converter fails: %v", err)
			}
			for _, app := range []*connectv1.ConnectApp{&list.Items[0], &converted} {
				var kept connectv1.Duration
				if d := app.Spec.TenantPolicy.UninstalledRetention; d != nil {
					kept = *d
				}
				if kept != tt.kept {
					t.Errorf("kept %q, want %q", kept, tt.kept)
				}
				got, err := app.GetUninstalledRetention()
				specErr := app.SpecError()
				if tt.wantErr == "" {
					if err != nil || specErr != nil {
						t.Fatalf("getter error %v, SpecError %v; want none", err, specErr)
					}
					if got != tt.want {
						t.Errorf("got %s, want %s", got, tt.want)
					}
					continue
				}
				if err == nil || specErr == nil {
					t.Fatalf("getter error %v, SpecError %v; want %q", err, specErr, tt.wantErr)
				}
				for _, e := range []error{err, specErr} {
					msg := e.Error()
					for _, want := range []string{"spec.tenantPolicy.uninstalledRetention: ", tt.wantErr, "such as 720h, the default", "apply the ConnectApp again"} {
						if !strings.Contains(msg, want) {
							t.Errorf("error %q lacks %q", msg, want)
						}
					}
					if strings.ContainsAny(msg, "\n\x1b") {
						t.Errorf("error %q holds a newline or an escape", msg)
					}
				}
			}
		})
	}
}

// TestSpecErrorNamesEveryUnreadableDuration: each duration field is
// checked, the Marketplace's too, and every unreadable one is named on one
// line.
func TestSpecErrorNamesEveryUnreadableDuration(t *testing.T) {
	bad := connectv1.Duration("2562048h")
	app := newApp("all-bad", withAppSpec(func(s *connectv1.ConnectAppSpec) {
		s.TenantPolicy.UninstalledRetention = &bad
		s.TenantPolicy.Verification = connectv1.VerificationPolicy{Interval: &bad, Timeout: &bad, InitialDelay: &bad}
		s.TenantPolicy.Rogue.GracePeriod = &bad
		s.Marketplace = &connectv1.MarketplaceCheck{Interval: &bad, GracePeriod: &bad}
	}))
	err := app.SpecError()
	if err == nil {
		t.Fatal("no error")
	}
	for _, path := range []string{
		"spec.tenantPolicy.uninstalledRetention", "spec.tenantPolicy.verification.interval", "spec.tenantPolicy.verification.timeout",
		"spec.tenantPolicy.verification.initialDelay", "spec.tenantPolicy.rogue.gracePeriod", "spec.marketplace.interval", "spec.marketplace.gracePeriod",
	} {
		if !strings.Contains(err.Error(), path+": ") {
			t.Errorf("%q does not name %s", err, path)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%q is more than one line", err)
	}
	if err := newApp("all-good", withVerification("1h", "10s", "0s")).SpecError(); err != nil {
		t.Errorf("a valid app: %v", err)
	}
}

func TestDurationOfReadsBack(t *testing.T) {
	for _, d := range []time.Duration{0, 10 * time.Second, 90 * time.Second, time.Hour, 720 * time.Hour, 1500 * time.Millisecond} {
		got, err := connectv1.DurationOf(d).Parse()
		if err != nil || got != d {
			t.Errorf("DurationOf(%s) = %q reads back as %s, %v", d, *connectv1.DurationOf(d), got, err)
		}
	}
	if got := *connectv1.DurationOf(720 * time.Hour); got != "720h" {
		t.Errorf("DurationOf(720h) = %q, want 720h as a person writes it", got)
	}
}
