#compdef autoops

_autoops_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _AUTOOPS_COMPLETE=complete_zsh autoops)
}

compdef _autoops_completion autoops
