"""The rows of docs/reliability.md: each fault or bad input, what the tool does, its tests.

``benchmarks/reliability_report.py`` runs the tests named here and writes the page;
``tests/test_reliability_doc.py`` checks that every test named exists, that every test
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
        _t("test_events", "test_arbitrary_bytes_only_raise_validation_errors",
           "test_mutated_valid_lines_only_raise_validation_errors",
           "test_arbitrary_json_only_raises_validation_errors")),
    Row("event files", "NaN, Infinity, 1e400, deep nesting, wrong types, missing fields",
        "the line is rejected naming the field and the problem",
        _t("test_events", "test_non_finite_numbers_are_rejected", "test_overflowing_float_is_rejected",
           "test_deep_nesting_inside_data_is_rejected", "test_invalid_fields_are_rejected_with_their_reason",
           "test_missing_required_field")),
    Row("event files", "BOM, CRLF, blank lines, a BOM on a later line, over-long lines",
        "BOM (first line) and CRLF tolerated; the rest rejected with its line number, reading goes on",
        _t("test_events", "test_bom_on_first_line_is_tolerated", "test_bom_on_a_later_line_is_rejected",
           "test_crlf_line_endings", "test_blank_lines_are_skipped_and_still_counted",
           "test_over_long_line_is_rejected_and_reading_continues")),
    Row("event files", "bad lines in a replayed file; --strict; a missing file",
        "each bad line reported with its number and skipped, valid events recorded, exit 6; "
        "--strict stops at the first keeping what was recorded; missing file exit 6",
        _t("test_replay", "test_bad_lines_are_reported_and_skipped",
           "test_strict_stops_at_the_first_bad_line_keeping_what_was_recorded",
           "test_missing_file_is_exit_6")),
    # --- configuration -----------------------------------------------------------------------
    Row("configuration", "random autoops.toml contents (any key, any TOML value, nan, inf), random bytes",
        "exit 0 or 3, each problem on one line naming the setting and the file (syntax errors: "
        "the position); never a traceback",
        _t("test_hostile_config", "test_any_project_file_is_valid_or_each_problem_is_named",
           "test_any_bytes_as_a_project_file")),
    Row("configuration", "random values in every LANGFUSE_* / AUTOOPS_* environment variable",
        "exit 0 or 3, each problem naming the variable; the secret never printed",
        _t("test_hostile_config", "test_any_environment_values")),
    Row("configuration", "a config file holding the secret key readable by group or others",
        "a warning in config validate and health-check, with the chmod to run",
        _t("test_secrets", "test_secret_in_project_file_is_never_printed")
        + _t("test_health", "test_a_secret_file_readable_by_others_is_a_warning")),
    # --- secrets -----------------------------------------------------------------------------
    Row("secrets", "every command, with valid keys, unreachable and bad hosts, malformed keys, with and without --verbose",
        "the secret key appears in no output and no file written (store, outbox, WAL, events, "
        "config, completion scripts)",
        _t("test_secrets", "test_no_command_prints_the_secret",
           "test_real_process_error_paths_never_print_the_secret",
           "test_serve_never_prints_a_configured_secret")),
    Row("secrets", "an internal error whose message and locals hold the secret",
        "exit 1 with one line; with --verbose a traceback without locals, the secret redacted",
        _t("test_secrets", "test_a_crash_with_verbose_shows_a_redacted_traceback")),
    # --- masking -----------------------------------------------------------------------------
    Row("data masking", "e-mails, card numbers, customer ids, money fields in event data, metadata, "
        "nested outputs, free-text reasoning, messages, conflicts",
        "none of them in the store file (WAL included), the outbox or what Langfuse receives",
        _t("test_masking_end_to_end", "test_nothing_sensitive_reaches_the_store_file",
           "test_nothing_sensitive_goes_over_the_wire")),
    Row("data masking", "any JSON value through the masker; e-mails and cards nested anywhere",
        "masked without raising, shape kept, no e-mail or card survives",
        _t("test_masking", "test_property_no_email_survives", "test_property_no_card_survives",
           "test_property_any_json_is_masked_without_raising")),
    # --- delivery ----------------------------------------------------------------------------
    Row("delivery", "Langfuse down for the rest of a 2,000-event replay (connections refused at 30 %)",
        "replay exits 4 naming the outbox; buffer flush later delivers exactly the span ids of a run without outage",
        _t("test_delivery", "test_outage_in_the_middle_loses_nothing")),
    Row("delivery", "the replay killed with SIGKILL while the outbox fills",
        "the next buffer flush delivers every batch the outbox held",
        _t("test_delivery", "test_killed_replay_is_delivered_by_the_next_flush")),
    Row("delivery", "429 with Retry-After 2; 503 on every request; a server answering after 10 s",
        "waits the Retry-After, nothing lost; exit 4 within the 2 s flush deadline, data kept for flush; "
        "the agents' rate unaffected",
        _t("test_delivery", "test_429_retry_after_is_honoured_and_nothing_is_lost",
           "test_unavailable_server_bounded_exit_then_flush",
           "test_a_failing_server_does_not_slow_the_agents")),
    Row("delivery", "shutdown while a request hangs on a host that accepts and never answers",
        "shutdown returns within its timeout; the batches queued behind the stuck request are "
        "written to the outbox, none lost",
        _t("test_delivery", "test_shutdown_keeps_what_was_queued_behind_a_stuck_request")),
    Row("delivery", "wrong secret key; a batch refused with 400",
        "exit 3 with one message, data kept and delivered after the fix; the batch becomes a dead "
        "letter (exit 5), re-sent by buffer flush --dead-letters",
        _t("test_delivery", "test_rejected_keys_keep_the_data_for_after_the_fix",
           "test_a_refused_batch_becomes_a_dead_letter_and_can_be_resent")),
    # --- reading the Langfuse API --------------------------------------------------------------
    Row("Langfuse API answers", "429 on a metrics request; 429 beyond the timeout",
        "retried after Retry-After; then exit 5 naming the wait",
        _t("test_metrics", "test_429_is_retried_then_reported")),
    Row("Langfuse API answers", "a server without the v2 metrics API (404)",
        "the v1 API gives the same output; remembered for the host",
        _t("test_metrics", "test_v1_only_server_gives_the_same_output")),
    Row("Langfuse API answers", "wrong keys; unreachable host; 64-bit counts as strings",
        "exit 3; exit 4; the strings parsed as numbers",
        _t("test_metrics", "test_wrong_keys_and_unreachable_host", "test_numbers_as_strings_are_parsed")),
    # --- autoops serve -----------------------------------------------------------------------
    Row("autoops serve", "SQL injection through string filters; a malicious v2 cursor",
        "no extra rows, nothing changed in the store; the cursor refused with 400",
        _t("test_local_api_reads", "test_sql_injection_through_string_filters_finds_nothing_and_changes_nothing",
           "test_a_malicious_cursor_is_refused")),
    Row("autoops serve", "requests without auth, with malformed or wrong Basic auth",
        "401 with Langfuse's message on every route but health",
        _t("test_serve", "test_health_needs_no_auth_and_everything_else_does",
           "test_basic_auth_header_shape_is_checked")),
    Row("autoops serve", "bad OTLP bodies: wrong content type, bad gzip, bad protobuf and JSON, wrong version header",
        "400 with Langfuse's error body, nothing stored",
        _t("test_serve", "test_otlp_ingestion_rules")),
    Row("autoops serve", "reads while a 10,000-event replay writes the same store from another process",
        "every read answered, the replay loses nothing",
        _t("test_serve", "test_reads_while_a_replay_writes_the_same_store")),
)  # fmt: skip
