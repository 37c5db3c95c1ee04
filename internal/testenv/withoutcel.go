package testenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// CreateUnderCRDWithoutDurationRules stores obj, a ConnectApp, as a cluster
// whose CRD predates the duration CEL rules (or was installed without them)
// would: it takes the rules that contain `duration(` out of the installed
// CRD, creates obj, and puts the CRD back as it was, waiting each time until
// the API server enforces the schema in place. It is for tests of what the
// operator does with an object the current CRD would refuse.
func (e *Env) CreateUnderCRDWithoutDurationRules(ctx context.Context, obj client.Object) error {
	const name = "connectapps.connect.tenantry.dev"
	orig := &unstructured.Unstructured{}
	orig.SetGroupVersionKind(crdGVK)
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, orig); err != nil {
		return err
	}
	stripped := orig.DeepCopy()
	stripDurationRules(stripped.Object)
	if err := e.Client.Update(ctx, stripped); err != nil {
		return fmt.Errorf("strip the rules: %w", err)
	}
	// The schema changes once the API server rebuilds the CRD's handler.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = e.Client.Create(ctx, obj.DeepCopyObject().(client.Object)); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create under the stripped CRD: %w", err)
	}
	back := orig.DeepCopy()
	back.SetResourceVersion(stripped.GetResourceVersion())
	if err := e.Client.Update(ctx, back); err != nil {
		return fmt.Errorf("restore the CRD: %w", err)
	}
	// Back in force when the same object, under another name, is refused.
	probe := obj.DeepCopyObject().(client.Object)
	probe.SetName(obj.GetName() + "-probe")
	probe.SetResourceVersion("")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := e.Client.Create(ctx, probe.DeepCopyObject().(client.Object), client.DryRunAll); err != nil {
			return nil
		}
	}
	return fmt.Errorf("the restored CRD's duration rules are not enforced after 30s")
}

// stripDurationRules removes every x-kubernetes-validations rule that
// reads a duration, anywhere in the CRD.
func stripDurationRules(v any) {
	switch x := v.(type) {
	case map[string]any:
		if rules, ok := x["x-kubernetes-validations"].([]any); ok {
			kept := rules[:0]
			for _, r := range rules {
				if m, ok := r.(map[string]any); !ok || !strings.Contains(fmt.Sprint(m["rule"]), "duration(") {
					kept = append(kept, r)
				}
			}
			if len(kept) == 0 {
				delete(x, "x-kubernetes-validations")
			} else {
				x["x-kubernetes-validations"] = kept
			}
		}
		for _, c := range x {
			stripDurationRules(c)
		}
	case []any:
		for _, c := range x {
			stripDurationRules(c)
		}
	}
}
