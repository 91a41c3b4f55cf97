# bash completion for clawvisor(8).
# Installed as PREFIX/share/bash-completion/completions/clawvisor; to try it
# from a checkout: source contrib/completion/clawvisor.bash

# The home the command line names: --home DIR, else $TINYCLAW_HOME, else
# ~/.tinyclaw, as clawvisor resolves it.
_clawvisor_home()
{
	local i h=""
	for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
		case ${COMP_WORDS[i]} in
		--home)
			# bash splits "--home=DIR" into "--home" "=" "DIR".
			h=${COMP_WORDS[i + 1]:-}
			[[ $h == "=" ]] && h=${COMP_WORDS[i + 2]:-}
			;;
		--home=*)
			h=${COMP_WORDS[i]#--home=}
			;;
		esac
	done
	h=${h:-${TINYCLAW_HOME:-$HOME/.tinyclaw}}
	# A leading ~ as the shell would expand it; nothing else is evaluated.
	# shellcheck disable=SC2088
	[[ $h == "~" || $h == "~/"* ]] && h=$HOME${h#\~}
	printf '%s' "$h"
}

# Dead-letter ids: the names in queue/dead-letter/ without ".json".
_clawvisor_dead_ids()
{
	local dir f
	dir=$(_clawvisor_home)/queue/dead-letter
	[[ -d $dir && -r $dir ]] || return
	for f in "$dir"/*.json; do
		[[ -e $f ]] || continue
		f=${f##*/}
		printf '%s\n' "${f%.json}"
	done
}

_clawvisor_reply()
{
	mapfile -t COMPREPLY < <(compgen "$@")
}

_clawvisor()
{
	local cur prev i cmd="" sub="" nargs=0
	local commands="serve status reload pause resume stop send sandbox dead help version"

	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	# bash splits "--opt=value" at the "=".
	if [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == "=" ]]; then
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		cur=""
	fi

	case $prev in
	--home)
		compopt -o filenames 2>/dev/null
		_clawvisor_reply -d -- "$cur"
		return
		;;
	--log-level)
		_clawvisor_reply -W "error warn info debug" -- "$cur"
		return
		;;
	esac

	# The command, its subcommand and how many arguments follow them;
	# flags may come anywhere.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--home | --log-level)
			((i++))
			[[ ${COMP_WORDS[i]:-} == "=" ]] && ((i++))
			;;
		-*) ;;
		*)
			if [[ -z $cmd ]]; then
				cmd=${COMP_WORDS[i]}
			elif [[ -z $sub ]]; then
				sub=${COMP_WORDS[i]}
			else
				((nargs++))
			fi
			;;
		esac
	done

	if [[ $cur == -* ]]; then
		case $cmd in
		serve)
			_clawvisor_reply -W "--home -f --foreground --log-level --syslog" -- "$cur"
			;;
		dead)
			if [[ $sub == requeue && $nargs == 0 ]]; then
				_clawvisor_reply -W "--all --home --json" -- "$cur"
			else
				_clawvisor_reply -W "--home --json" -- "$cur"
			fi
			;;
		"")
			_clawvisor_reply -W "--home" -- "$cur"
			;;
		*)
			_clawvisor_reply -W "--home --json" -- "$cur"
			;;
		esac
		return
	fi

	case $cmd in
	"")
		_clawvisor_reply -W "$commands" -- "$cur"
		;;
	sandbox)
		if [[ -z $sub ]]; then
			_clawvisor_reply -W "show set doctor build-image" -- "$cur"
		elif [[ $sub == set && $nargs == 0 ]]; then
			_clawvisor_reply -W "host docker apple bwrap" -- "$cur"
		fi
		;;
	dead)
		if [[ -z $sub ]]; then
			_clawvisor_reply -W "list show requeue purge" -- "$cur"
		elif [[ $nargs == 0 ]]; then
			case $sub in
			show | purge)
				_clawvisor_reply -W "$(_clawvisor_dead_ids)" -- "$cur"
				;;
			requeue)
				_clawvisor_reply -W "--all $(_clawvisor_dead_ids)" -- "$cur"
				;;
			esac
		fi
		;;
	esac
}

complete -F _clawvisor clawvisor
