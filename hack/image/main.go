// Command image builds Tenantry's OCI image without a container engine,
// with go-containerregistry: FROM scratch, one layer holding the static
// binary at /tenantry, Debian's CA bundle at /etc/ssl/certs, and passwd
// and group entries for the non-root user 65532 (nonroot); USER 65532 and
// the OCI labels in the config. It writes an OCI image layout (for crane
// push, skopeo, or `unpack`) and a docker-loadable tarball.
//
//	go run . build -binary ../../bin/tenantry-linux -version 0.1.0 -revision $(git rev-parse HEAD) \
//	  -ref ghcr.io/tenantry/tenantry:0.1.0 -layout ../../bin/image -tarball ../../bin/image.tar
//	go run . unpack -layout ../../bin/image -dir /tmp/rootfs
//
// It is a module of its own so the operator's go.mod does not carry it.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uid is the non-root user the image runs as (distroless's nonroot).
const uid = 65532

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: image build|unpack [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "unpack":
		err = unpack(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	binary := fs.String("binary", "", "static linux tenantry binary (CGO_ENABLED=0)")
	caFile := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle (Debian's ca-certificates)")
	version := fs.String("version", "dev", "version (org.opencontainers.image.version)")
	revision := fs.String("revision", "unknown", "source revision (org.opencontainers.image.revision)")
	ref := fs.String("ref", "ghcr.io/tenantry/tenantry:dev", "reference recorded in the layout and the tarball")
	layoutDir := fs.String("layout", "", "OCI image layout directory to write (replaced)")
	tarPath := fs.String("tarball", "", "docker-loadable tarball to write")
	arch := fs.String("arch", runtime.GOARCH, "architecture of the binary")
	_ = fs.Parse(args)
	if *binary == "" || *layoutDir == "" {
		return errors.New("build needs -binary and -layout")
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		return fmt.Errorf("CA bundle: %w (apt-get install ca-certificates)", err)
	}
	// A fixed time keeps the image reproducible: same inputs, same digest.
	epoch := time.Unix(0, 0).UTC()
	files := []file{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "etc/passwd", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)},
		{name: "etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", uid)},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, uid: uid},
		{name: "tenantry", mode: 0o755, data: bin},
	}
	layerTar, err := tarOf(files, epoch)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", *arch, v1.Time{Time: epoch}
	labels := map[string]string{
		"org.opencontainers.image.title":       "tenantry",
		"org.opencontainers.image.description": "Kubernetes-native tenancy for Atlassian Connect and Forge apps",
		"org.opencontainers.image.source":      "https://github.com/tenantry/tenantry",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.revision":    *revision,
	}
	cfg.Config = v1.Config{
		Entrypoint:   []string{"/tenantry"},
		User:         fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir:   "/",
		Env:          []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		Labels:       labels,
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "8081/tcp": {}, "8082/tcp": {}, "9090/tcp": {}},
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	img = mutate.Annotations(img, labels).(v1.Image)

	tag, err := name.NewTag(*ref)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*layoutDir); err != nil {
		return err
	}
	p, err := layout.Write(*layoutDir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag.String()})); err != nil {
		return err
	}
	if *tarPath != "" {
		if err := tarball.WriteToFile(*tarPath, tag, img); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", tag, digest)
	return nil
}

// unpack writes the root filesystem of the layout's only image into dir,
// for running its entrypoint under chroot.
func unpack(args []string) error {
	fs := flag.NewFlagSet("unpack", flag.ExitOnError)
	layoutDir := fs.String("layout", "", "OCI image layout directory")
	dir := fs.String("dir", "", "directory to write the root filesystem into")
	config := fs.Bool("config", false, "print the image's config JSON instead")
	_ = fs.Parse(args)
	p, err := layout.FromPath(*layoutDir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(m.Manifests) != 1 {
		return fmt.Errorf("%s holds %d images, want 1", *layoutDir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	if *config {
		raw, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(raw)
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(*dir, filepath.Clean("/"+h.Name))
		if !strings.HasPrefix(target, filepath.Clean(*dir)+string(os.PathSeparator)) {
			return fmt.Errorf("entry %q escapes the root", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&os.ModePerm)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: type %c not expected in this image", h.Name, h.Typeflag)
		}
	}
}

type file struct {
	name string
	dir  bool
	mode int64
	uid  int
	data []byte
}

func tarOf(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
