package promote

import (
	"fmt"

	tendv1 "github.com/tend-gitops/tend/api/v1alpha1"
)

// Apply makes a Stage's updates in the checkout at dir with freight f's
// versions. It reports whether a file changed; an error names the update
// (spec.updates[i]) and what to fix.
func Apply(dir string, f *tendv1.Freight, updates []tendv1.StageUpdate) (bool, error) {
	changed := false
	for i := range updates {
		c, err := apply(dir, f, &updates[i])
		if err != nil {
			return false, fmt.Errorf("spec.updates[%d]: %w", i, err)
		}
		changed = changed || c
	}
	return changed, nil
}

func apply(dir string, f *tendv1.Freight, u *tendv1.StageUpdate) (bool, error) {
	image := func() (tendv1.FreightImage, error) {
		if u.Image == "" {
			return tendv1.FreightImage{}, fmt.Errorf("set image: the repository of the freight's image to write")
		}
		for _, im := range f.Images {
			if im.Repository == u.Image {
				return im, nil
			}
		}
		return tendv1.FreightImage{}, fmt.Errorf("image %q is not in the freight; its images come from the Warehouse's image subscriptions", u.Image)
	}
	switch {
	case u.Kustomize != nil:
		im, err := image()
		if err != nil {
			return false, err
		}
		return SetKustomizeImage(dir, u.Kustomize.Path, im, u.Kustomize.Digest)
	case u.Markers != nil:
		im, err := image()
		if err != nil {
			return false, err
		}
		n, err := SetMarkers(dir, u.Markers.Path, map[string]tendv1.FreightImage{u.Markers.Policy: im})
		return n > 0, err
	case u.Value != nil:
		var value string
		if u.Value.From == tendv1.ValueFromChartVersion {
			if u.Chart == "" {
				return false, fmt.Errorf("set chart: the name of the freight's chart whose version to write")
			}
			for _, c := range f.Charts {
				if c.Name == u.Chart {
					value = c.Version
				}
			}
			if value == "" {
				return false, fmt.Errorf("chart %q is not in the freight; its charts come from the Warehouse's chart subscriptions", u.Chart)
			}
		} else {
			im, err := image()
			if err != nil {
				return false, err
			}
			switch u.Value.From {
			case tendv1.ValueFromTag:
				value = im.Tag
			case tendv1.ValueFromDigest:
				value = im.Digest
			case tendv1.ValueFromReference:
				value = ImageRef(im, false)
			case tendv1.ValueFromRepository:
				value = im.Repository
			default:
				return false, fmt.Errorf("value.from %q: want Tag, Digest, Reference, Repository or ChartVersion", u.Value.From)
			}
		}
		return SetValue(dir, u.Value.File, u.Value.Key, value)
	}
	return false, fmt.Errorf("set one of kustomize, value or markers")
}
