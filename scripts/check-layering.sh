#!/usr/bin/env bash
# Checks berth's layering and size rules (docs/development.md); prints every
# offence as "file: problem" and exits 1 if there is any. Runs first in make check.
#   scripts/check-layering.sh [ROOT]    (ROOT: the source tree, default: this script's)
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2
bad=0
err() { echo "layering: $*"; bad=1; }

# One home per external library: LIBRARY HEADER-REGEX HOME-FILE (add a line per new library). The
# raft library's home is its binding, consensus.c, and that binding's in-memory twin over libraft's
# own fixture, consensus_sim.c (berth-sim --site, test_site_sim): the same consensus.h.
libraries='
sqlite3    sqlite3\.h                     agent/telemetry/store.c
mosquitto  (mosquitto|mqtt_protocol)\.h   agent/console/uplink.c
microhttpd microhttpd\.h                  agent/infer/api.c
curl       curl/curl\.h                   ports/linux/curl_loop.h
raft       (raft|raft/uv|uv)\.h           agent/site/consensus.c|agent/site/consensus_sim.c
raftsim    raft/fixture\.h                agent/site/consensus_sim.c
libcrypto  openssl/.*\.h                  agent/trust/sig.c
'
# Platform headers: none outside ports/; the core (agent/ but its program mains in
# agent/cmd/) also leaves process and file-descriptor calls to the HAL.
platform='sys/socket\.h|sys/stat\.h|sys/un\.h|sys/ioctl\.h|sys/statvfs\.h|sys/mman\.h|netinet/.*|arpa/.*|netdb\.h|dirent\.h|linux/.*'
core_only='fcntl\.h|unistd\.h'
# agent/ folders by layer: a folder includes its own headers and those of lower layers only.
rank() { case $1 in base) echo 0;; model) echo 1;; telemetry) echo 2;; supervise) echo 3;; infer) echo 4;;
	scale|console|images|site) echo 5;; trust) echo 4;; top) echo 6;; cmd) echo 7;; *) echo 99;; esac; }
folder() { case $1 in agent/*/*) f=${1#agent/}; echo "${f%%/*}";; agent/*) echo top;; esac; }

includes() { grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$@" 2>/dev/null |
	sed -E 's/^([^:]*):([0-9]*):.*include[[:space:]]*([<"])([^>"]*)[>"].*/\1 \2 \3 \4/'; }

mapfile -t srcs < <(find agent hal ports -name '*.[ch]' | sort)
while read -r file line delim inc; do
	[ "$delim" = '<' ] && where="$file:$line: #include <$inc>" || where="$file:$line: #include \"$inc\""
	case $file in
	ports/*)
		port=${file#ports/}; port=${port%%/*}
		case $inc in hal/*|agent/base/*|ports/$port/*) ;;
		agent/*|ports/*) err "$where: a port includes only hal/, agent/base/ and its own files";; esac ;;
	*)
		[[ $inc =~ ^($platform)$ ]] && err "$where: platform header outside ports/ (add a hal/ call)"
		[[ $file != agent/cmd/* && $inc =~ ^($core_only)$ ]] && err "$where: platform header in the core (add a hal/ call)"
		case $inc in ports/*) [[ $file:$inc =~ ^agent/cmd/(berth-sim|sim_site)\.c:ports/sim/sim\.h$ ]] ||
			err "$where: only berth-sim drives a port directly (the sim's control API)";; esac
		if [[ $file == agent/* && $inc == agent/* ]]; then
			from=$(folder "$file"); to=$(folder "$inc")
			[ "$from" = "$to" ] || [ "$(rank "$to")" -lt "$(rank "$from")" ] ||
				err "$where: agent/$from/ may not include agent/$to/ (dependencies point down: docs/development.md)"
		fi ;;
	esac
	while read -r lib hdr home; do
		[ -n "$lib" ] && [[ $inc =~ ^($hdr)$ ]] && [[ ! $file =~ ^($home)$ ]] &&
			err "$where: $lib has one home, $home"
	done <<< "$libraries"
done < <(includes "${srcs[@]}")

# The scheduler is read through the dispatcher outside agent/infer/.
grep -Hn 'dispatch_sched(' $(find agent -name '*.c' ! -path 'agent/infer/*') 2>/dev/null |
	while IFS=: read -r f l _; do echo "layering: $f:$l: dispatch_sched() outside agent/infer/ (use the dispatch_* figure calls)"; done |
	grep . && bad=1

# Sizes: no file in agent/ over 900 lines, no function over 80 (a brace scan;
# tables are initialisers, not functions).
for f in $(find agent -name '*.[ch]' | sort); do
	n=$(wc -l < "$f")
	[ "$n" -le 900 ] || err "$f: $n lines (at most 900: split it by responsibility)"
done
awk -v MAX=80 '
FNR == 1 { depth = 0; start = 0; sig = "" }
{
	line = $0
	gsub(/"([^"\\]|\\.)*"/, "\"\"", line); gsub(/\047([^\047\\]|\\.)*\047/, "0", line); sub(/\/\/.*/, "", line)
	if (depth == 0 && line ~ /^[A-Za-z_].*\(/ && line !~ /;[ \t]*$/ && line !~ /=/) { sig = line; sigline = FNR }
	o = gsub(/\{/, "{", line); c = gsub(/\}/, "}", line)
	if (depth == 0 && o > 0 && sig != "") start = FNR
	depth += o - c
	if (depth == 0 && start) {
		if (FNR - start - 1 > MAX) { n = sig; sub(/\(.*/, "", n); sub(/.*[ *]/, "", n)
			printf "layering: %s:%d: %s() is %d lines (at most %d)\n", FILENAME, sigline, n, FNR - start - 1, MAX }
		start = 0; sig = ""
	}
	if (depth == 0 && o == 0 && line ~ /;[ \t]*$/) sig = ""
}' $(find agent -name '*.c' | sort) | grep . && bad=1

[ $bad -eq 0 ] && echo "layering: ok (${#srcs[@]} files: includes, library homes, layers, sizes)"
exit $bad
