/* Finding and loading pruner plugins (dlopen), after nbdkit's
 * server/plugins.c: one entry symbol, a descriptor whose ABI version and
 * size are checked before anything else in it is read, and a host copy of
 * min(host size, plugin size) bytes in a zeroed struct so fields an older
 * plugin did not know about read as NULL. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prunebench/plugin.h"

#ifndef PB_PLUGINDIR
#define PB_PLUGINDIR "/usr/local/lib/prunebench/plugins"
#endif

/* The smallest descriptor ABI version 1 ever had: everything up to and
 * including prune. Later fields only ever go after it. */
#define PB_PRUNER_MIN_SIZE \
	(offsetof(pb_pruner, prune) + sizeof(((pb_pruner *)0)->prune))

#define PLUGIN_SUFFIX ".so"

struct pb_plugin_path {
	char **dirs;
	int n, n_user;
};

struct pb_plugin {
	void *dl;
	char *file;
	pb_pruner desc;     /* host copy, zero-extended */
};

/* ---- the search path ----------------------------------------------------- */

static int is_dir(const char *d)
{
	struct stat st;

	return stat(d, &st) == 0 && S_ISDIR(st.st_mode);
}

static int path_push(pb_plugin_path *sp, int at, const char *dir,
		     size_t len, pb_error *err)
{
	char **dirs = realloc(sp->dirs, sizeof *dirs * (size_t)(sp->n + 1));
	char *copy;

	if (!dirs)
		return pb_error_set(err, PB_ENOMEM, "out of memory (plugin "
				    "path)");
	sp->dirs = dirs;
	copy = strndup(dir, len);
	if (!copy)
		return pb_error_set(err, PB_ENOMEM, "out of memory (plugin "
				    "path)");
	memmove(dirs + at + 1, dirs + at, sizeof *dirs * (size_t)(sp->n - at));
	dirs[at] = copy;
	sp->n++;
	return 0;
}

/* True when the running executable lives under the build tree whose
 * plugins are in build_plugindir (".../plugins/.libs"). Libtool runs
 * uninstalled programs from .libs/ of their own directory, still inside
 * the tree. */
static int running_in_build_tree(const char *build_plugindir)
{
	char exe[PATH_MAX], top[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	const char *cut = strstr(build_plugindir, "/plugins/.libs");
	size_t tn;

	if (!cut)
		return 0;
	tn = (size_t)(cut - build_plugindir);
	if (tn == 0 || tn >= sizeof top)
		return 0;
	memcpy(top, build_plugindir, tn);
	top[tn] = '\0';
	if (n <= 0) /* no /proc: trust the directory if it is there */
		return is_dir(build_plugindir);
	exe[n] = '\0';
	{
		char real_top[PATH_MAX];

		if (realpath(top, real_top))
			strcpy(top, real_top);
	}
	tn = strlen(top);
	return !strncmp(exe, top, tn) && exe[tn] == '/';
}

int pb_plugin_path_new(pb_plugin_path **out, pb_error *err)
{
	pb_plugin_path *sp = calloc(1, sizeof *sp);
	const char *env = getenv(PB_PLUGIN_ENV);
	int rc = 0;

	*out = NULL;
	if (!sp)
		return pb_error_set(err, PB_ENOMEM, "out of memory (plugin "
				    "path)");
	while (env && *env && !rc) {
		const char *colon = strchr(env, ':');
		size_t len = colon ? (size_t)(colon - env) : strlen(env);

		if (len)
			rc = path_push(sp, sp->n, env, len, err);
		env = colon ? colon + 1 : NULL;
	}
#ifdef PB_BUILD_PLUGINDIR
	if (!rc && running_in_build_tree(PB_BUILD_PLUGINDIR))
		rc = path_push(sp, sp->n, PB_BUILD_PLUGINDIR,
			       strlen(PB_BUILD_PLUGINDIR), err);
#endif
	if (!rc)
		rc = path_push(sp, sp->n, PB_PLUGINDIR, strlen(PB_PLUGINDIR),
			       err);
	if (rc) {
		pb_plugin_path_free(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

int pb_plugin_path_add(pb_plugin_path *sp, const char *dir, pb_error *err)
{
	struct stat st;

	if (stat(dir, &st))
		return pb_error_set(err, PB_EIO, "plugin directory '%s': %s",
				    dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return pb_error_set(err, PB_EIO, "plugin directory '%s' is not "
				    "a directory: give the folder that holds "
				    "NAME.so", dir);
	return path_push(sp, sp->n_user++, dir, strlen(dir), err);
}

int pb_plugin_path_count(const pb_plugin_path *sp)
{
	return sp->n;
}

const char *pb_plugin_path_dir(const pb_plugin_path *sp, int i)
{
	return i >= 0 && i < sp->n ? sp->dirs[i] : NULL;
}

void pb_plugin_path_free(pb_plugin_path *sp)
{
	if (!sp)
		return;
	for (int i = 0; i < sp->n; i++)
		free(sp->dirs[i]);
	free(sp->dirs);
	free(sp);
}

/* ---- listing ------------------------------------------------------------- */

static int valid_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The plugin name of a directory entry "NAME.so", or 0 if it is not one. */
static int entry_name(const char *file, char *name, size_t n)
{
	size_t len = strlen(file), sl = strlen(PLUGIN_SUFFIX);

	if (len <= sl || strcmp(file + len - sl, PLUGIN_SUFFIX) ||
	    len - sl >= n)
		return 0;
	for (size_t i = 0; i < len - sl; i++)
		if (!valid_name_char(file[i]))
			return 0;
	memcpy(name, file, len - sl);
	name[len - sl] = '\0';
	return 1;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const pb_plugin_entry *)a)->name,
		      ((const pb_plugin_entry *)b)->name);
}

void pb_plugin_list_free(pb_plugin_entry *list, int n)
{
	for (int i = 0; list && i < n; i++) {
		free(list[i].name);
		free(list[i].file);
	}
	free(list);
}

int pb_plugin_list(const pb_plugin_path *sp, pb_plugin_entry **out, int *n,
		   pb_error *err)
{
	pb_plugin_entry *list = NULL;
	int count = 0, cap = 0;

	*out = NULL;
	*n = 0;
	for (int d = 0; d < sp->n; d++) {
		DIR *dir = opendir(sp->dirs[d]);
		struct dirent *e;

		if (!dir)
			continue; /* default directories may not exist */
		while ((e = readdir(dir))) {
			char name[256];
			int dup = 0;

			if (!entry_name(e->d_name, name, sizeof name))
				continue;
			for (int i = 0; i < count && !dup; i++)
				dup = !strcmp(list[i].name, name);
			if (dup)
				continue;
			if (count == cap) {
				int nc = cap ? 2 * cap : 16;
				pb_plugin_entry *nl = realloc(list,
					sizeof *nl * (size_t)nc);

				if (!nl)
					goto oom;
				list = nl;
				cap = nc;
			}
			list[count].name = strdup(name);
			list[count].file = malloc(strlen(sp->dirs[d]) +
						  strlen(e->d_name) + 2);
			if (!list[count].name || !list[count].file) {
				count++;
				closedir(dir);
				goto oom;
			}
			sprintf(list[count].file, "%s/%s", sp->dirs[d],
				e->d_name);
			count++;
			continue;
oom:
			closedir(dir);
			pb_plugin_list_free(list, count);
			return pb_error_set(err, PB_ENOMEM, "out of memory "
					    "(plugin list)");
		}
		closedir(dir);
	}
	if (count)
		qsort(list, (size_t)count, sizeof *list, cmp_entry);
	*out = list;
	*n = count;
	return 0;
}

/* ---- loading ------------------------------------------------------------- */

void pb_plugin_close(pb_plugin *p)
{
	if (!p)
		return;
	if (p->dl)
		dlclose(p->dl);
	free(p->file);
	free(p);
}

const pb_pruner *pb_plugin_pruner(const pb_plugin *p)
{
	return &p->desc;
}

const char *pb_plugin_file(const pb_plugin *p)
{
	return p->file;
}

/* "name" of ".../name.so" into buf. */
static void file_stem(const char *path, char *buf, size_t n)
{
	const char *base = strrchr(path, '/');
	size_t len, sl = strlen(PLUGIN_SUFFIX);

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > sl && !strcmp(base + len - sl, PLUGIN_SUFFIX))
		len -= sl;
	if (len >= n)
		len = n - 1;
	memcpy(buf, base, len);
	buf[len] = '\0';
}

static int check_descriptor(pb_plugin *p, const pb_pruner *d, pb_error *err)
{
	const char *f = p->file;
	char stem[256];
	pb_options *o = NULL;
	int rc;

	if (d->abi_version != PB_PRUNER_ABI_VERSION)
		return pb_error_set(err, PB_EMISMATCH, "plugin %s was built "
				    "for pruner ABI version %u, but this "
				    "prunebench speaks ABI version %u: rebuild "
				    "the plugin against this prunebench's "
				    "pruner.h", f, (unsigned)d->abi_version,
				    (unsigned)PB_PRUNER_ABI_VERSION);
	if (d->struct_size < PB_PRUNER_MIN_SIZE ||
	    d->struct_size > sizeof(pb_pruner))
		return pb_error_set(err, PB_EMISMATCH, "plugin %s has a "
				    "descriptor of %u bytes, but ABI version "
				    "%u descriptors are %zu..%zu bytes on this "
				    "host (%s): rebuild the plugin against this "
				    "prunebench's pruner.h and fill the header "
				    "with PB_PRUNER_HEADER", f,
				    (unsigned)d->struct_size,
				    (unsigned)PB_PRUNER_ABI_VERSION,
				    (size_t)PB_PRUNER_MIN_SIZE,
				    sizeof(pb_pruner),
				    d->struct_size > sizeof(pb_pruner) ?
				    "it was built against a newer header" :
				    "it is smaller than any known layout");
	memcpy(&p->desc, d, d->struct_size);
	d = &p->desc;
	if (!d->name || !*d->name)
		return pb_error_set(err, PB_EINVAL, "plugin %s has no name: "
				    "set .name in its descriptor", f);
	for (const char *c = d->name; *c; c++)
		if (!valid_name_char(*c))
			return pb_error_set(err, PB_EINVAL, "plugin %s: name "
					    "'%s' may only contain letters, "
					    "digits, '_' and '-'", f, d->name);
	file_stem(f, stem, sizeof stem);
	if (strcmp(stem, d->name))
		return pb_error_set(err, PB_EINVAL, "plugin file %s declares "
				    "the name '%s': a plugin must be named "
				    "after its file, so rename the file to "
				    "%s%s or change .name", f, d->name, d->name,
				    PLUGIN_SUFFIX);
	if (!d->prune)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' (%s) has no "
				    "prune hook: every pruner must set .prune",
				    d->name, f);
	if (d->granularity != PB_GRANULARITY_WEIGHT &&
	    d->granularity != PB_GRANULARITY_CHANNEL)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' (%s) has an "
				    "unknown granularity %d", d->name, f,
				    (int)d->granularity);
	if (!d->version)
		p->desc.version = "?";
	if (!d->description)
		p->desc.description = "";
	if (!d->citation)
		p->desc.citation = "";
	rc = pb_options_new(&o, d, err);
	pb_options_free(o);
	if (rc)
		return pb_error_prefix(err, "%s: ", f);
	return 0;
}

int pb_plugin_open_file(pb_plugin **out, const char *path, pb_error *err)
{
	pb_plugin *p;
	const pb_pruner *(*entry)(void);
	const pb_pruner *d;
	void *sym;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof *p);
	if (!p || !(p->file = strdup(path))) {
		free(p);
		return pb_error_set(err, PB_ENOMEM, "out of memory (plugin)");
	}
	/* RTLD_NOW: a plugin calling a pb_ctx_* function this host lacks
	 * fails here, not in the middle of a cell. RTLD_LOCAL: two plugins'
	 * internal symbols never collide. */
	dlerror();
	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		const char *msg = dlerror();

		rc = pb_error_set(err, PB_EIO, "cannot load plugin %s: %s",
				  path, msg ? msg : "dlopen failed");
		pb_plugin_close(p);
		return rc;
	}
	dlerror();
	sym = dlsym(p->dl, PB_PRUNER_ENTRY_SYMBOL);
	if (!sym) {
		rc = pb_error_set(err, PB_EFORMAT, "%s is not a prunebench "
				  "plugin: it does not export %s (define it "
				  "with PB_PRUNER_EXPORT)", path,
				  PB_PRUNER_ENTRY_SYMBOL);
		pb_plugin_close(p);
		return rc;
	}
	/* ISO C forbids converting void * to a function pointer; POSIX
	 * dlsym guarantees it works, and memcpy keeps -pedantic quiet. */
	memcpy(&entry, &sym, sizeof entry);
	d = entry();
	if (!d) {
		rc = pb_error_set(err, PB_EFORMAT, "plugin %s: %s returned "
				  "NULL", path, PB_PRUNER_ENTRY_SYMBOL);
		pb_plugin_close(p);
		return rc;
	}
	rc = check_descriptor(p, d, err);
	if (rc) {
		pb_plugin_close(p);
		return rc;
	}
	*out = p;
	return 0;
}

static int check_name(const char *name, pb_error *err)
{
	if (!name || !*name)
		return pb_error_set(err, PB_EINVAL, "empty plugin name");
	if (strchr(name, '/') || strstr(name, ".."))
		return pb_error_set(err, PB_EINVAL, "plugin name '%s' "
				    "contains '%s': give a plain name such as "
				    "'l1', and add its folder with "
				    "--plugin-dir or %s", name,
				    strchr(name, '/') ? "/" : "..",
				    PB_PLUGIN_ENV);
	for (const char *c = name; *c; c++)
		if (!valid_name_char(*c))
			return pb_error_set(err, PB_EINVAL, "plugin name '%s' "
					    "may only contain letters, digits, "
					    "'_' and '-'", name);
	return 0;
}

static int not_found(const pb_plugin_path *sp, const char *name,
		     pb_error *err)
{
	pb_plugin_entry *list = NULL;
	char avail[512], dirs[512];
	size_t len = 0;
	int n = 0;

	avail[0] = dirs[0] = '\0';
	if (pb_plugin_list(sp, &list, &n, NULL) == 0)
		for (int i = 0; i < n && len < sizeof avail; i++)
			len += (size_t)snprintf(avail + len, sizeof avail - len,
						"%s%s", i ? ", " : "",
						list[i].name);
	pb_plugin_list_free(list, n);
	len = 0;
	for (int i = 0; i < sp->n && len < sizeof dirs; i++)
		len += (size_t)snprintf(dirs + len, sizeof dirs - len, "%s%s",
					i ? ":" : "", sp->dirs[i]);
	return pb_error_set(err, PB_ENOTFOUND, "no plugin '%s' (searched %s); "
			    "available: %s. Add a folder with --plugin-dir or "
			    "%s", name, dirs, n ? avail : "none",
			    PB_PLUGIN_ENV);
}

int pb_plugin_open(pb_plugin **out, const pb_plugin_path *sp,
		   const char *name, pb_error *err)
{
	int rc;

	*out = NULL;
	if ((rc = check_name(name, err)))
		return rc;
	for (int d = 0; d < sp->n; d++) {
		size_t len = strlen(sp->dirs[d]) + strlen(name) +
			     strlen(PLUGIN_SUFFIX) + 2;
		char *path = malloc(len);
		struct stat st;

		if (!path)
			return pb_error_set(err, PB_ENOMEM, "out of memory");
		snprintf(path, len, "%s/%s%s", sp->dirs[d], name,
			 PLUGIN_SUFFIX);
		if (stat(path, &st) == 0) {
			rc = pb_plugin_open_file(out, path, err);
			free(path);
			return rc;
		}
		free(path);
	}
	return not_found(sp, name, err);
}

const char *pb_granularity_name(pb_granularity g)
{
	switch (g) {
	case PB_GRANULARITY_WEIGHT: return "weight";
	case PB_GRANULARITY_CHANNEL: return "channel";
	}
	return "?";
}
