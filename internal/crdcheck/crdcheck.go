package crdcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemavalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Schema is one generated CRD, ready to validate objects of its kind.
type Schema struct {
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
}

// Load reads every CRD in dir, keyed by kind. It fails if the API server
// would refuse a CRD (a CEL rule that does not compile or costs too much).
func Load(dir string) (map[string]Schema, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("finding CRDs in %s: %v (run hack/update-codegen.sh)", dir, err)
	}
	out := map[string]Schema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var v1crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &v1crd); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", f, err)
		}
		var crd apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
			return nil, fmt.Errorf("converting %s: %w", f, err)
		}
		if len(crd.Spec.Versions) != 1 || crd.Spec.Validation == nil {
			return nil, fmt.Errorf("%s: want one version with a schema", f)
		}
		// The API server records the stored version on create.
		crd.Status.StoredVersions = []string{crd.Spec.Versions[0].Name}
		if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
			return nil, fmt.Errorf("the API server would refuse %s: %v", filepath.Base(f), errs.ToAggregate())
		}
		// The internal version holds one schema for all versions.
		internal := crd.Spec.Validation.OpenAPIV3Schema
		s, err := structuralschema.NewStructural(internal)
		if err != nil {
			return nil, fmt.Errorf("%s: structural schema: %w", f, err)
		}
		out[crd.Spec.Names.Kind] = Schema{internal: internal, structural: s}
	}
	return out, nil
}

// Validate does what the API server does with a new object: default it (in
// place), then check the schema, list types and CEL rules.
func (s Schema) Validate(obj map[string]any) (field.ErrorList, error) {
	defaulting.Default(obj, s.structural)
	validator, _, err := schemavalidation.NewSchemaValidator(s.internal)
	if err != nil {
		return nil, fmt.Errorf("schema validator: %w", err)
	}
	errs := schemavalidation.ValidateCustomResource(nil, obj, validator)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	celErrs, _ := cel.NewValidator(s.structural, true, celconfig.PerCallLimit).
		Validate(context.Background(), nil, s.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...), nil
}

// Decode reads YAML the way the API server reads JSON: whole numbers become
// int64, as the CEL validator expects.
func Decode(data []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("converting YAML: %w", err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(j, &obj); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return obj, nil
}
