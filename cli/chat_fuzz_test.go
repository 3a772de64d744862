package cli

import (
	"archive/zip"
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dezipSeed builds a zip with the given members (a name ending in "/" is a directory; method 0 is
// stored, 8 deflated).
func dezipSeed(members ...string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, m := range members {
		h := &zip.FileHeader{Name: m, Method: zip.Deflate}
		if i%2 == 1 {
			h.Method = zip.Store
		}
		w, _ := zw.CreateHeader(h)
		if !strings.HasSuffix(m, "/") {
			w.Write([]byte("content of " + m))
		}
	}
	zw.Close()
	return buf.Bytes()
}

// FuzzDezip feeds an arbitrary archive (what a peer uploads through the chat) and an arbitrary
// `!dezip` argument to dezip: no panic; nothing is written outside the target directory (the
// archive's name up to ".zip"); on success every member is where Python's zipfile puts it
// (name decoded, cut at NUL, split on "/", empty, "." and ".." parts dropped) with its content;
// a file that is not a zip reads "File is not a zip file", and a member that does not extract
// gives an error (Python's text where the archive is at fault, else one naming the member).
func FuzzDezip(f *testing.F) {
	f.Add(dezipSeed("a.txt", "empty/", "s/", "s/t/", "s/t/b.txt"), "d.zip")
	f.Add(dezipSeed("../../evil.txt", "/abs/x", "./a/./b", "a\\b\\c.txt", "x/../y"), "e.zip.bak.zip")
	f.Add(dezipSeed("dup", "dup", "f", "f/g"), "c.zip")
	f.Add(dezipSeed("n\x00ul.txt", "é.txt", ".."), ".zip")
	f.Add(dezipSeed("a"), "nozipsuffix")
	{ // a name without the UTF-8 flag (code page 437)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "caf\x82.txt", Method: zip.Store, NonUTF8: true})
		w.Write([]byte("x"))
		zw.Close()
		f.Add(buf.Bytes(), "cp.zip")
	}
	{ // a stored member whose CRC-32 does not match
		b := dezipSeed("x.txt", "crc.txt")
		i := bytes.Index(b, []byte("content of crc.txt"))
		b[i] = 'C'
		f.Add(b, "crc.zip")
	}
	{ // a compression method Go does not read (bzip2)
		b := dezipSeed("bz.txt", "st.txt")
		b[8] = 12
		if i := bytes.Index(b, []byte("PK\x01\x02")); i >= 0 {
			b[i+10] = 12
		}
		f.Add(b, "bz.zip")
	}
	f.Add([]byte("not a zip"), "bad.zip")
	f.Add([]byte{}, "empty.zip")

	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if name == "" || name == "." || name == ".." || len(name) > 64 || strings.ContainsAny(name, "/\x00") {
			name = "f.zip" // the argument stays inside the test directory
		}
		dir := t.TempDir()
		zipPath := filepath.Join(dir, name)
		if err := os.WriteFile(zipPath, data, 0o644); err != nil {
			t.Skip(err)
		}
		target := dir
		if rel := strings.SplitN(name, ".zip", 2)[0]; rel != "" {
			target = filepath.Join(dir, rel)
		}
		err := dezip(dir, name)

		// nothing outside the target (but the archive itself)
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, werr error) error {
			if p == dir || p == zipPath || p == target || strings.HasPrefix(p, target+string(filepath.Separator)) {
				return nil
			}
			t.Fatalf("%s written outside %s (error %v)", p, target, err)
			return nil
		})

		zr, zerr := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if zerr != nil && !errors.Is(zerr, zip.ErrInsecurePath) {
			if err == nil {
				t.Fatalf("archive unreadable (%v), dezip succeeded", zerr)
			}
			if errors.Is(zerr, zip.ErrFormat) && err.Error() != "File is not a zip file" {
				t.Fatalf("not a zip: %q", err)
			}
			return
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// success: the last member extracted to each path holds its content
		want := map[string]*zip.File{}
		for _, zf := range zr.File {
			n := zipMemberName(zf)
			var parts []string
			for _, p := range strings.Split(n, "/") {
				if p != "" && p != "." && p != ".." {
					parts = append(parts, p)
				}
			}
			if len(parts) == 0 {
				continue
			}
			dst := filepath.Join(append([]string{target}, parts...)...)
			if dst == zipPath {
				return // a member overwrote the archive while it was read: nothing to compare
			}
			if strings.HasSuffix(n, "/") {
				if fi, serr := os.Stat(dst); serr != nil || !fi.IsDir() {
					t.Fatalf("directory member %q: %s not a directory (%v)", zf.Name, dst, serr)
				}
				delete(want, dst)
				continue
			}
			want[dst] = zf
		}
		for dst, zf := range want {
			r, oerr := zf.Open()
			if oerr != nil {
				t.Fatalf("member %q does not open (%v) but dezip succeeded", zf.Name, oerr)
			}
			content, rerr := io.ReadAll(r)
			r.Close()
			if rerr != nil {
				t.Fatalf("member %q does not read (%v) but dezip succeeded", zf.Name, rerr)
			}
			got, gerr := os.ReadFile(dst)
			if gerr != nil || !bytes.Equal(got, content) {
				t.Fatalf("member %q at %s: %q (%v), want %q (crc %x)", zf.Name, dst, got, gerr, content, crc32.ChecksumIEEE(content))
			}
		}
	})
}
