package uds

import (
	"os"
	"os/user"
	"strings"
)

// NormalizeDir is aioconnectors' full_path: Python os.path.expanduser, then expandvars, then
// normpath, then abspath (a relative path resolves against the current working directory).
// Unlike os.ExpandEnv, an unset $VAR or ${VAR} is left as written, like Python. An empty
// path gives the working directory. It reads the environment, the user database (for
// "~user") and the working directory; not for hot paths.
func NormalizeDir(p string) string {
	return pyAbspath(Normpath(pyExpandvars(pyExpanduser(p))))
}

// pyExpanduser follows posixpath.expanduser.
func pyExpanduser(p string) string {
	if !strings.HasPrefix(p, "~") {
		return p
	}
	i := strings.IndexByte(p[1:], '/')
	if i < 0 {
		i = len(p)
	} else {
		i++
	}
	var home string
	if i == 1 {
		if h, ok := os.LookupEnv("HOME"); ok {
			home = h
		} else {
			u, err := user.Current()
			if err != nil {
				return p
			}
			home = u.HomeDir
		}
	} else {
		u, err := user.Lookup(p[1:i])
		if err != nil {
			return p
		}
		home = u.HomeDir
	}
	home = strings.TrimRight(home, "/")
	if r := home + p[i:]; r != "" {
		return r
	}
	return "/"
}

// pyExpandvars follows posixpath.expandvars: $name or ${name} where name matches the ASCII
// \w+ (or anything but "}" inside braces); unknown names are kept verbatim.
func pyExpandvars(p string) string {
	if strings.IndexByte(p, '$') < 0 {
		return p
	}
	i := 0
	for {
		j := strings.IndexByte(p[i:], '$')
		if j < 0 {
			return p
		}
		start := i + j
		end := -1 // end of the match (exclusive)
		var name string
		if start+1 < len(p) && p[start+1] == '{' {
			if k := strings.IndexByte(p[start+2:], '}'); k >= 0 {
				end = start + 2 + k + 1
				name = p[start+2 : end-1]
			}
		} else {
			k := start + 1
			for k < len(p) && isWordASCII(p[k]) {
				k++
			}
			if k > start+1 {
				end = k
				name = p[start+1 : k]
			}
		}
		if end < 0 { // no match at this '$': search on from the next byte
			i = start + 1
			continue
		}
		v, ok := os.LookupEnv(name)
		if !ok || name == "" {
			i = end
			continue
		}
		tail := p[end:]
		p = p[:start] + v
		i = len(p)
		p += tail
	}
}

func isWordASCII(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// Normpath is Python's posixpath.normpath: it removes empty and "." components and folds
// ".." lexically, keeping the leading ".." of a relative path and exactly two leading
// slashes ("//a" stays, "///a" becomes "/a"), unlike path.Clean. An empty path gives ".".
// Pure; safe for concurrent use.
func Normpath(p string) string {
	if p == "" {
		return "."
	}
	initial := 0
	if strings.HasPrefix(p, "/") {
		initial = 1
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			initial = 2
		}
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if c != ".." || (initial == 0 && len(comps) == 0) || (len(comps) > 0 && comps[len(comps)-1] == "..") {
			comps = append(comps, c)
		} else if len(comps) > 0 {
			comps = comps[:len(comps)-1]
		}
	}
	r := strings.Repeat("/", initial) + strings.Join(comps, "/")
	if r == "" {
		return "."
	}
	return r
}

// pyAbspath follows posixpath.abspath. Where Python would raise (the working directory
// cannot be found, e.g. it was deleted) it uses $PWD if that is absolute, else "/", so the
// result is always absolute.
func pyAbspath(p string) string {
	if !strings.HasPrefix(p, "/") {
		wd, err := os.Getwd()
		if err != nil {
			wd = os.Getenv("PWD")
			if !strings.HasPrefix(wd, "/") {
				wd = "/"
			}
		}
		p = Join(wd, p)
	}
	return Normpath(p)
}
