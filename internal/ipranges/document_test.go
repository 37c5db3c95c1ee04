package ipranges

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		products []string
		want     []string
		wantErr  string
	}{
		{name: "valid doc, v4 and v6", body: sampleDoc,
			want: []string{"104.192.136.0/21", "185.166.140.0/22", "2401:1d80:3000::/36"}},
		{name: "host bits masked", body: doc(item("104.192.136.77/21"), item("2401:1d80:3000::1/36")),
			want: []string{"104.192.136.0/21", "2401:1d80:3000::/36"}},
		{name: "ipv4-mapped prefix written as ipv4", body: doc(item("::ffff:104.192.136.0/117")),
			want: []string{"104.192.136.0/21"}},
		{name: "surrounding whitespace", body: doc(item(" 104.192.136.0/21 ")),
			want: []string{"104.192.136.0/21"}},
		{name: "product filter", body: sampleDoc, products: []string{"jira"},
			want: []string{"104.192.136.0/21", "2401:1d80:3000::/36"}},
		{name: "product filter, several products", body: sampleDoc, products: []string{"confluence", "bitbucket"},
			want: []string{"104.192.136.0/21", "185.166.140.0/22"}},
		{name: "product filter ignores case", body: sampleDoc, products: []string{"Bitbucket"},
			want: []string{"185.166.140.0/22"}},
		{name: "product filter drops items without product", body: doc(item("104.192.136.0/21"), item("185.166.140.0/22", "jira")), products: []string{"jira"},
			want: []string{"185.166.140.0/22"}},
		{name: "product filter leaves nothing", body: sampleDoc, products: []string{"trello"},
			wantErr: `no item of the ranges document names a product in ["trello"]`},
		{name: "empty items", body: doc(), wantErr: "lists no items"},
		{name: "no items field", body: `{"creationDate":"x","syncToken":1}`, wantErr: "lists no items"},
		{name: "null document", body: `null`, wantErr: "lists no items"},
		{name: "bad cidr", body: doc(item("104.192.136.0/21"), item("not-a-cidr")),
			wantErr: `item 1: cidr "not-a-cidr"`},
		{name: "bad cidr in an item the filter drops", body: doc(item("104.192.136.0/21", "jira"), item("300.1.1.0/24", "trello")), products: []string{"jira"},
			wantErr: `item 1: cidr "300.1.1.0/24"`},
		{name: "missing cidr", body: doc(`{"network":"104.192.136.0","mask_len":21}`),
			wantErr: `item 0: cidr "": missing`},
		{name: "bare address is not a cidr", body: doc(item("104.192.136.1")),
			wantErr: `item 0: cidr "104.192.136.1"`},
		{name: "zone in cidr", body: doc(item("fe80::%eth0/64")),
			wantErr: `item 0: cidr "fe80::%eth0/64"`},
		{name: "v4 allow-all refused", body: doc(item("104.192.136.0/21"), item("0.0.0.0/0")),
			wantErr: "item 1: cidr \"0.0.0.0/0\": wider than /8"},
		{name: "v6 allow-all refused", body: doc(item("::/0")),
			wantErr: "item 0: cidr \"::/0\": wider than /16"},
		{name: "v4 /8 accepted", body: doc(item("10.0.0.0/8")), want: []string{"10.0.0.0/8"}},
		{name: "long bad cidr quoted short", body: doc(item(strings.Repeat("9", 500))),
			wantErr: `item 0: cidr "` + strings.Repeat("9", maxQuotedBytes) + `…"`},
		{name: "item not an object", body: doc(`"104.192.136.0/21"`), wantErr: "item 0: "},
		{name: "product not a list", body: doc(`{"cidr":"104.192.136.0/21","product":"jira"}`), wantErr: "item 0: "},
		{name: "not json", body: `<html>maintenance</html>`, wantErr: "not valid JSON"},
		{name: "truncated json", body: sampleDoc[:len(sampleDoc)/2], wantErr: "not valid JSON"},
		{name: "trailing garbage", body: sampleDoc + "]", wantErr: "not valid JSON"},
		{name: "oversized body", body: doc(item("104.192.136.0/21")) + strings.Repeat(" ", MaxDocumentBytes),
			wantErr: "over 4194304 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body), tt.products)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("a refused document returned %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if want := prefixes(tt.want...); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleDoc))
	f.Add([]byte(doc(item("::ffff:1.2.3.4/128"))))
	f.Add([]byte(`{"items":[{"cidr":"1.2.3.4/33"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Parse(body, nil)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("an accepted document must have prefixes")
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Bits() < minDocumentBits(p) {
				t.Fatalf("prefix %v is not normalised or too wide", p)
			}
		}
	})
}
