package lifecycle

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestDecodePayload(t *testing.T) {
	valid := `{"key":"com.example.app","clientKey":"ck","baseUrl":"https://acme.atlassian.net","eventType":"installed","sharedSecret":"s"}`
	tests := []struct {
		name, body string
		wantErr    string // "" accepts; "invalid:" prefix means an ErrInvalidField
	}{
		{"valid", valid, ""},
		{"unknown fields, nested", `{"key":"k","clientKey":"c","baseUrl":"b","eventType":"e","x":{"y":[1,{"z":null}]}}`, ""},
		{"keys repeated in different objects", `{"key":"k","clientKey":"c","baseUrl":"b","eventType":"e","a":{"key":1},"b":{"key":2}}`, ""},
		{"duplicate key", `{"key":"k","clientKey":"c","clientKey":"d","baseUrl":"b","eventType":"e"}`, "appears twice"},
		{"duplicate key through an escape", `{"key":"k","clientKey":"c","client\u004bey":"d","baseUrl":"b","eventType":"e"}`, "appears twice"},
		{"duplicate nested key", `{"key":"k","clientKey":"c","baseUrl":"b","eventType":"e","x":{"a":1,"a":2}}`, "appears twice"},
		{"case variant of a known field", `{"key":"k","ClientKey":"c","baseUrl":"b","eventType":"e"}`, "case-sensitive"},
		{"string containing quotes and braces", `{"key":"k","clientKey":"c\"}{,:","baseUrl":"b","eventType":"e"}`, ""},
		{"too deep", `{"key":"k","clientKey":"c","baseUrl":"b","eventType":"e","x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, "nested deeper"},
		{"array", `[]`, "must be a JSON object"},
		{"empty", ``, "must be a JSON object"},
		{"trailing data", valid + `{}`, "not valid JSON"},
		{"truncated", `{"key":"k"`, "not valid JSON"},
		{"invalid UTF-8", "{\"key\":\"\xff\"}", "UTF-8"},
		{"number for a string", `{"key":1}`, "invalid: field \"key\" must be a string"},
		{"missing clientKey", `{"key":"k","baseUrl":"b","eventType":"e"}`, "invalid: field \"clientKey\" is required"},
		{"over-long key", `{"key":"` + strings.Repeat("k", 65) + `","clientKey":"c","baseUrl":"b","eventType":"e"}`, "invalid: field \"key\" is 65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Decode([]byte(tt.body))
			switch {
			case tt.wantErr == "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.Key == "" {
					t.Errorf("decoded nothing")
				}
			case strings.HasPrefix(tt.wantErr, "invalid: "):
				if !errors.Is(err, ErrInvalidField) || !strings.Contains(err.Error(), strings.TrimPrefix(tt.wantErr, "invalid: ")) {
					t.Fatalf("err = %v, want an invalid-field error containing %q", err, tt.wantErr)
				}
			default:
				if err == nil || errors.Is(err, ErrInvalidField) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a syntax error containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

// TestFieldLimitsMatchTheCRD keeps the receiver's bounds equal to the
// ConnectTenant schema's, so nothing the receiver accepts is refused by the
// API server afterwards (which would fail a genuine install with a 400).
func TestFieldLimitsMatchTheCRD(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "config", "crd", "bases", "connect.tenantry.dev_connecttenants.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								MaxLength *int `json:"maxLength"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
	checked := 0
	for _, f := range fieldLimits {
		field, stored := spec[f.name]
		if !stored || field.MaxLength == nil {
			continue // not stored in the tenant (key, eventType, sharedSecret…)
		}
		checked++
		if *field.MaxLength != f.max {
			t.Errorf("payload field %q allows %d bytes, the CRD's spec.%s allows %d", f.name, f.max, f.name, *field.MaxLength)
		}
	}
	if checked < 10 {
		t.Errorf("compared only %d fields with the CRD; the schema layout may have changed", checked)
	}
}
