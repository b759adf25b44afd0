package render

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func cm(ns, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns},
	}}
}

func TestMergeKeepsOrderAndRefusesDuplicates(t *testing.T) {
	a, err := newResult([]*unstructured.Unstructured{cm("x", "a"), cm("x", "b")}, []string{"a.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := newResult([]*unstructured.Unstructured{cm("y", "a")}, []string{"other.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Merge([]*Result{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Objects() {
		got = append(got, o.GetNamespace()+"/"+o.GetName())
	}
	if want := []string{"x/a", "x/b", "y/a"}; !slices.Equal(got, want) {
		t.Errorf("merged objects %v, want %v", got, want)
	}
	if len(res.Files) != 1 || res.Files[0] != "a.yaml" {
		t.Errorf("merged files %v, want the first part's", res.Files)
	}
	c, err := newResult([]*unstructured.Unstructured{cm("x", "b")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Merge([]*Result{a, b, c})
	var dup *DuplicateError
	if !errors.As(err, &dup) || dup.First != 0 || dup.Second != 2 || dup.Object != "ConfigMap x/b" {
		t.Fatalf("merge with a duplicate: %v, want a DuplicateError for ConfigMap x/b in parts 0 and 2", err)
	}
}
