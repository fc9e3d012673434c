"""The rows of docs/reliability.md: each fault or bad input, what the tool does, its tests.

``benchmarks/reliability_report.py`` runs the tests named here and writes the page;
``tests/cli/test_reliability_doc.py`` checks that every test named exists, that every test
recording reliability figures has a row, and that the page lists every row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    area: str
    fault: str  # what was tried
    behaviour: str  # what the tool does about it
    tests: tuple[str, ...]  # pytest node ids, file::function


def _t(module: str, *names: str) -> tuple[str, ...]:
    return tuple(f"tests/{module}.py::{name}" for name in names)


ROWS: tuple[Row, ...] = (
    # --- event files -------------------------------------------------------------------------
    Row("event files", "arbitrary bytes, mutated valid lines, arbitrary JSON as an event line",
        "a validation error with the reason; never another exception",
        _t("simulation/test_events", "test_arbitrary_bytes_only_raise_validation_errors",
           "test_mutated_valid_lines_only_raise_validation_errors",
           "test_arbitrary_json_only_raises_validation_errors")),
    Row("event files", "NaN, Infinity, 1e400, deep nesting, wrong types, missing fields",
        "the line is rejected naming the field and the problem",
        _t("simulation/test_events", "test_non_finite_numbers_are_rejected", "test_overflowing_float_is_rejected",
           "test_deep_nesting_inside_data_is_rejected", "test_invalid_fields_are_rejected_with_their_reason",
           "test_missing_required_field")),
    Row("event files", "BOM, CRLF, blank lines, a BOM on a later line, over-long lines",
        "BOM (first line) and CRLF tolerated; the rest rejected with its line number, reading goes on",
        _t("simulation/test_events", "test_bom_on_first_line_is_tolerated", "test_bom_on_a_later_line_is_rejected",
           "test_crlf_line_endings", "test_blank_lines_are_skipped_and_still_counted",
           "test_over_long_line_is_rejected_and_reading_continues")),
    Row("event files", "valid events mixed with random JSON, wrong types, 1e400, NaN, nesting 60k deep, "
        "lone surrogates, invalid UTF-8, lines over 1 MiB, a file cut mid-line, an empty file",
        "exit 6 (0 when nothing is wrong), each bad line as FILE:N: reason and in the summary, "
        "every valid event stored under its run id, also as a real process",
        _t("hostile/test_hostile_input", "test_replay_of_hostile_event_files",
           "test_replay_subprocess_one_of_each_hostile_line", "test_replay_of_an_empty_file")),
    Row("event files", "bad lines in a replayed file; --strict; a missing file",
        "each bad line reported with its number and skipped, valid events recorded, exit 6; "
        "--strict stops at the first keeping what was recorded; missing file exit 6",
        _t("cli/test_replay", "test_bad_lines_are_reported_and_skipped",
           "test_strict_stops_at_the_first_bad_line_keeping_what_was_recorded",
           "test_missing_file_is_exit_6")),
    # --- configuration -----------------------------------------------------------------------
    Row("configuration", "random autoops.toml contents (any key, any TOML value, nan, inf), random bytes",
        "exit 0 or 3, each problem on one line naming the setting and the file (syntax errors: "
        "the position); never a traceback",
        _t("hostile/test_hostile_config", "test_any_project_file_is_valid_or_each_problem_is_named",
           "test_any_bytes_as_a_project_file")),
    Row("configuration", "random bytes as .env (Latin-1 from an old editor, binary)",
        "exit 0 or 3, a file that is not UTF-8 named with the byte; never a traceback",
        _t("hostile/test_hostile_config", "test_any_bytes_as_a_dotenv_file")),
    Row("configuration", "random values in every LANGFUSE_* / AUTOOPS_* environment variable",
        "exit 0 or 3, each problem naming the variable; the secret never printed",
        _t("hostile/test_hostile_config", "test_any_environment_values")),
    Row("configuration", "a config file holding the secret key readable by group or others",
        "a warning in config validate and health-check, with the chmod to run",
        _t("cli/test_secrets", "test_secret_in_project_file_is_never_printed")
        + _t("cli/test_health", "test_a_secret_file_readable_by_others_is_a_warning")),
    Row("configuration", "sampling set 1.5, -0.1, abc (global and rule); a project file that is not TOML",
        "exit 2 naming the valid range (exit 3 for the broken file), the file unchanged byte for byte",
        _t("cli/test_sampling", "test_invalid_rate_exits_2_and_leaves_the_file_unchanged",
           "test_a_file_that_is_not_toml_is_left_alone")),
    # --- secrets -----------------------------------------------------------------------------
    Row("secrets", "every command, with valid keys, unreachable and bad hosts, malformed keys, with and without --verbose",
        "the secret key appears in no output and no file written (store, outbox, WAL, events, "
        "config, completion scripts)",
        _t("cli/test_secrets", "test_no_command_prints_the_secret",
           "test_real_process_error_paths_never_print_the_secret",
           "test_serve_never_prints_a_configured_secret")),
    Row("secrets", "an internal error whose message and locals hold the secret",
        "exit 1 with one line; with --verbose a traceback without locals, the secret redacted",
        _t("cli/test_secrets", "test_a_crash_with_verbose_shows_a_redacted_traceback")),
    # --- masking -----------------------------------------------------------------------------
    Row("data masking", "e-mails, card numbers, customer ids, money fields in event data, metadata, "
        "nested outputs, free-text reasoning, messages, conflicts",
        "none of them in the store file (WAL included), the outbox or what Langfuse receives",
        _t("core/test_masking_end_to_end", "test_nothing_sensitive_reaches_the_store_file",
           "test_nothing_sensitive_goes_over_the_wire")),
    Row("data masking", "any JSON value through the masker; e-mails and cards nested anywhere",
        "masked without raising, shape kept, no e-mail or card survives",
        _t("core/test_masking", "test_property_no_email_survives", "test_property_no_card_survives",
           "test_property_any_json_is_masked_without_raising")),
    # --- delivery ----------------------------------------------------------------------------
    Row("delivery", "Langfuse down for the rest of a 500-event replay (connections refused at 30 %)",
        "replay exits 4 naming the outbox; buffer flush later delivers exactly the span ids of a run without outage",
        _t("core/test_delivery", "test_outage_in_the_middle_loses_nothing")),
    Row("delivery", "the replay killed with SIGKILL while the outbox fills",
        "the next buffer flush delivers every batch the outbox held",
        _t("core/test_delivery", "test_killed_replay_is_delivered_by_the_next_flush")),
    Row("delivery", "429 with Retry-After 2; 503 on every request; a server answering after 10 s",
        "waits the Retry-After, nothing lost; exit 4 within the 2 s flush deadline, data kept for flush; "
        "every event processed and every span delivered or kept, the agents never waiting on the network; "
        "the count printed is what buffer status shows",
        _t("core/test_delivery", "test_429_retry_after_is_honoured_and_nothing_is_lost",
           "test_unavailable_server_bounded_exit_then_flush",
           "test_the_agents_never_wait_on_a_failing_server")),
    Row("delivery", "shutdown while a request hangs on a host that accepts and never answers",
        "shutdown returns within its timeout; the batches queued behind the stuck request are "
        "written to the outbox, none lost",
        _t("core/test_delivery", "test_shutdown_keeps_what_was_queued_behind_a_stuck_request")),
    Row("delivery", "wrong secret key; a batch refused with 400",
        "exit 3 with one message, data kept and delivered after the fix; the batch becomes a dead "
        "letter (exit 5), re-sent by buffer flush --dead-letters",
        _t("core/test_delivery", "test_rejected_keys_keep_the_data_for_after_the_fix",
           "test_a_refused_batch_becomes_a_dead_letter_and_can_be_resent")),
    Row("delivery", "1,000 and (slow) 10,000 events into a healthy autoops serve",
        "exit 0; every trace, observation and score id on the server; traces readable while events "
        "are still being read",
        _t("cli/test_replay_delivery", "test_a_healthy_server_gets_everything_while_the_replay_runs")),
    Row("delivery", "SIGTERM and SIGKILL at a random moment against a healthy, a slow (0.3 s) and a "
        "resetting (every 3rd request unanswered) server; 2 trials each, 20 with AUTOOPS_PROPERTY_SCALE=20",
        "143 with the summary, or -9; after buffer flush every event reported (progress file or "
        "summary) is on the server, whole and once",
        _t("cli/test_replay_delivery", "test_a_stop_at_a_random_moment_loses_nothing_reported")),
    Row("delivery", "a host answering 200 text/html to everything (a proxy login page, a captive portal)",
        "nothing counts as delivered; sending stops at the first answer; exit 5 naming host, status "
        "and type; buffer flush --from later sends every batch to the right host",
        _t("cli/test_replay_delivery", "test_a_host_answering_html_keeps_every_batch_and_says_so")),
    Row("delivery", "a full disk (a 3 MB tmpfs, else RLIMIT_FSIZE) in local and langfuse mode",
        "the run stops, exit 6 naming the file; the summary counts exactly what the store or the "
        "outbox holds, never \"kept in the outbox\" for what was not written",
        _t("cli/test_replay_delivery", "test_a_full_disk_stops_the_run_and_counts_only_what_is_on_disk")),
    # --- reading the Langfuse API --------------------------------------------------------------
    Row("Langfuse API answers", "metrics and trace answers with missing fields, wrong types, numbers as "
        "strings, 1e400, NaN, truncated JSON, HTML, null, deep nesting, statuses 404/500/502",
        "exit 0 with strict JSON (garbage counted as 0 or ignored) or exit 5 naming host and "
        "path; never a traceback (exit 1 only for a real 404 of traces show)",
        _t("hostile/test_hostile_input", "test_metrics_against_a_strange_langfuse",
           "test_traces_against_a_strange_langfuse")),
    Row("Langfuse API answers", "429 on a metrics request; 429 beyond the timeout",
        "retried after Retry-After; then exit 5 naming the wait",
        _t("cli/test_metrics", "test_429_is_retried_then_reported")),
    Row("Langfuse API answers", "a server without the v2 metrics API (404)",
        "the v1 API gives the same output; remembered for the host",
        _t("cli/test_metrics", "test_v1_only_server_gives_the_same_output")),
    Row("Langfuse API answers", "wrong keys; unreachable host; 64-bit counts as strings",
        "exit 3; exit 4; the strings parsed as numbers",
        _t("cli/test_metrics", "test_wrong_keys_and_unreachable_host", "test_numbers_as_strings_are_parsed")),
    # --- autoops serve -----------------------------------------------------------------------
    Row("autoops serve", "every route x 13 kinds of bad credentials (none, wrong secret or public key, "
        "malformed, other schemes, NUL); a spy on the comparison",
        "401 with Langfuse's message on every route of the app's own table but health; both "
        "key parts always compared in constant time",
        _t("local_api/test_serve_security", "test_every_route_but_health_refuses_missing_or_wrong_credentials",
           "test_both_key_parts_are_compared_every_time")),
    Row("autoops serve", "bodies past 32 MiB (honest, lying Content-Length, chunked); a 192 MiB gzip "
        "bomb; a lying gzip trailer; 20 KB headers",
        "413 while reading, nothing stored; the bomb refused with memory growth under 100 KiB; "
        "400 for oversized headers, the server keeps answering",
        _t("local_api/test_serve_security", "test_bodies_past_the_limit_are_refused_while_reading_and_nothing_is_stored",
           "test_a_gzip_bomb_is_refused_without_inflating_it", "test_oversized_headers_are_refused")),
    Row("autoops serve", "35 slow clients: silent, trickling headers, headers then nothing, stalled bodies",
        "each closed at its deadline (headers 10 s, body 30 s, drain 5 s; 408 where a request "
        "began); a normal client answered throughout",
        _t("local_api/test_serve_security", "test_slow_clients_are_cut_off_while_others_are_answered")),
    Row("autoops serve", "SQL payloads in every parameter of every read route and every metrics "
        "filter, column, metadata key and name; NUL bytes; random text in any parameter",
        "200 with no extra rows or 400, never 5xx; schema, counts and every row unchanged; a NUL in "
        "a string filter value is a 400",
        _t("local_api/test_serve_security", "test_sql_injection_through_every_filter_changes_nothing",
           "test_a_nul_byte_does_not_widen_a_like_filter",
           "test_any_text_in_any_read_parameter_is_answered_without_a_server_error")),
    Row("autoops serve", "lone surrogates, 30-digit integers and timestamps, NaN and 1e999 scores in "
        "written data; mutated protobuf, random bytes, gzip garbage, wrong OTLP/JSON shapes",
        "200 (text cleaned) or 400 (413 for a gzip trailer claiming too much), never 5xx; earlier "
        "spans still readable and the store still writable",
        _t("local_api/test_serve_security", "test_unencodable_text_and_huge_numbers_are_answered_and_the_store_stays_writable")
        + _t("hostile/test_hostile_input", "test_hostile_otlp_bodies_never_break_serve")),
    Row("autoops serve", "hostile metrics queries: extreme windows, huge numbers, deep nesting, "
        "unknown fields, non-JSON text",
        "200 with data or 400 with a message, within 20 s (a series over 50,000 buckets is a 400)",
        _t("hostile/test_hostile_input", "test_hostile_metrics_queries_never_break_serve")),
    Row("autoops serve", "--host 10.0.0.1, 0.0.0.0, ::, a LAN address without --allow-remote; "
        "every route and error path crawled for keys",
        "exit 2 before binding, naming --allow-remote; no answer body or header holds a key",
        _t("local_api/test_serve_security", "test_a_non_loopback_address_is_refused_before_binding",
           "test_no_answer_reveals_the_keys")),
    Row("autoops serve", "3 replays exporting at once while 2 readers poll traces, observations, metrics",
        "every read 200; stored counts per run equal what each replay reported: 0 lost",
        _t("local_api/test_serve_load", "test_concurrent_exporters_and_readers_lose_nothing")),
    Row("autoops serve", "SQL injection through string filters; a malicious v2 cursor",
        "no extra rows, nothing changed in the store; the cursor refused with 400",
        _t("local_api/test_local_api_reads", "test_sql_injection_through_string_filters_finds_nothing_and_changes_nothing",
           "test_a_malicious_cursor_is_refused")),
    Row("autoops serve", "requests without auth, with malformed or wrong Basic auth",
        "401 with Langfuse's message on every route but health",
        _t("local_api/test_serve", "test_health_needs_no_auth_and_everything_else_does",
           "test_basic_auth_header_shape_is_checked")),
    Row("autoops serve", "bad OTLP bodies: wrong content type, bad gzip, bad protobuf and JSON, wrong version header",
        "400 with Langfuse's error body, nothing stored",
        _t("local_api/test_serve", "test_otlp_ingestion_rules")),
    Row("autoops serve", "reads while a 1,000-event replay writes the same store from another process",
        "every read answered, the replay loses nothing",
        _t("local_api/test_serve", "test_reads_while_a_replay_writes_the_same_store")),
)  # fmt: skip
