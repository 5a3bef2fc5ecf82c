# shellcheck shell=bash
# Reading the API server's audit log, for the benchmarks (sourced by hack/bench.sh and
# hack/bench-peer.sh). The caller sets AUDIT_LOG (hack/cluster.sh audit-log). The API server
# rotates the log at 100 MiB (audit-<time>.log beside it, all kept): an offset is a position in
# all of them read in order, the rotated ones first, oldest first.

audit_files() {
	local f
	for f in "${AUDIT_LOG%.log}"-*.log; do [[ ! -e "${f}" ]] || echo "${f}"; done
	echo "${AUDIT_LOG}"
}

audit_offset() { audit_files | xargs stat -c %s | awk '{ n += $1 } END { printf "%d\n", n }'; }

# audit_range FROM TO: the bytes between two offsets.
audit_range() {
	local file size base=0 from to
	while read -r file; do
		size="$(stat -c %s "${file}")"
		from=$(($1 > base ? $1 - base : 0)) to=$(($2 - base < size ? $2 - base : size))
		# tail is cut off by head's exit (SIGPIPE) when the range ends before the file does.
		[[ ${to} -le ${from} ]] || { tail -c +$((from + 1)) "${file}" || true; } | head -c $((to - from))
		base=$((base + size))
	done < <(audit_files)
}

# audit_requests WHO FROM TO: the requests of the impersonated user WHO between two offsets, one
# line each: "verb resource code object". A watch counts at its ResponseStarted event, any other
# request at its ResponseComplete event (RequestReceived is not logged), so each counts once.
audit_requests() {
	audit_range "$2" "$3" | awk -v who="$1" '
		function str(text, key,   s) {
			if (!match(text, "\"" key "\":\"[^\"]*\"")) return ""
			s = substr(text, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
			return s
		}
		index($0, "\"impersonatedUser\":{\"username\":\"" who "\"") == 0 { next }
		{
			stage = str($0, "stage"); verb = str($0, "verb")
			if (verb == "watch" ? stage != "ResponseStarted" : stage != "ResponseComplete") next
			ref = ""
			if (match($0, /"objectRef":\{[^}]*\}/)) ref = substr($0, RSTART, RLENGTH)
			resource = str(ref, "resource"); sub_ = str(ref, "subresource")
			object = str(ref, "name"); if (str(ref, "namespace") != "") object = str(ref, "namespace") "/" object
			if (resource == "") resource = "-"
			if (sub_ != "") resource = resource "/" sub_
			code = "-"
			rest = substr($0, index($0, "\"responseStatus\":"))
			if (match(rest, /"code":[0-9]+/)) code = substr(rest, RSTART + 7, RLENGTH - 7)
			print verb, resource, code, (object == "" ? "-" : object)
		}'
}
