"""Pieces of the incident report page: the downloads and the verdict form."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import auth, data, state
from app.components.format import fmt_time, verdict_label
from app.text import literal
from app.ui_errors import show_error
from ladis_core.access import Permission
from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

VERDICT_LABELS = {
    "confirmed": "Confirmed attack",
    "dismissed": "Dismissed (false alarm)",
    "needs-review": "Needs review",
}


def report_downloads(
    world_uri: str, endpoint: str, job_ids: tuple[str, ...], tsne: tuple | None
) -> None:
    from ladis_core import report

    if not auth.require(Permission.EXPORT):
        return
    gathered = data.report_data(world_uri, endpoint, job_ids, tsne)
    for note in gathered.notes:
        st.warning(literal(note), icon=":material/warning:")
    stem = f"ladis-{endpoint}-{job_ids[0]}" + (f"-to-{job_ids[-1]}" if len(job_ids) > 1 else "")
    columns = st.columns(3)
    for column, fmt, label, icon in (
        (columns[0], "html", "HTML report", ":material/html:"),
        (columns[1], "json", "JSON", ":material/data_object:"),
        (columns[2], "csv", "CSV (flagged inputs)", ":material/table:"),
    ):
        column.download_button(
            f"Download {label}",
            # rendered only when clicked: the HTML embeds plotly.js and every image
            data=lambda fmt=fmt: report.render(gathered, fmt).encode("utf-8"),
            file_name=f"{stem}.{fmt}",
            mime=report.MEDIA_TYPES[fmt],
            on_click="ignore",
            icon=icon,
            key=f"{state.REPORT_DOWNLOAD}.{fmt}",
            type="primary" if fmt == "html" else "secondary",
            width="stretch",
        )
    st.caption(
        f"{len(gathered.jobs)} job{'s' if len(gathered.jobs) != 1 else ''}, "
        f"{len(gathered.samples)} flagged inputs ({len(gathered.html_samples)} with images in the "
        "HTML). The HTML file is self-contained: it opens offline in any browser."
        + (" It includes the t-SNE computed on the Layer explorer." if gathered.embedding else "")
    )


def verdict_form(world_uri: str, endpoint: str, job: JobResult) -> None:
    """The job's verdicts so far and the form that records a new one."""
    from ladis_core.monitoring import triage

    history = data.verdicts(world_uri, endpoint).get(job.job_id, [])
    if history:
        st.dataframe(
            pd.DataFrame(
                {
                    "When": [fmt_time(v.at) for v in history],
                    "Verdict": [verdict_label(v) for v in history],
                    "Analyst": [v.analyst for v in history],
                    "Note": [v.note for v in history],
                }
            ),
            hide_index=True,
        )
    else:
        st.caption("No verdict yet.")
    if not auth.require(Permission.RECORD_VERDICT):
        return
    identity = auth.current()
    with st.form(state.REPORT_VERDICT_FORM, clear_on_submit=True):
        verdict = st.radio(
            "Verdict",
            list(VERDICT_LABELS),
            format_func=VERDICT_LABELS.get,
            horizontal=True,
            index=None,
        )
        if identity.signed_in:
            # with sign-in, the verdict is attributed to the signed-in identity: no name box
            analyst = identity.label
            st.caption(f"Recorded as **{literal(analyst)}** (signed in).")
        else:
            analyst = st.text_input("Analyst", placeholder="Your name")
        note = st.text_area("Note", placeholder="What you found, what was done")
        submitted = st.form_submit_button("Record verdict", type="primary", icon=":material/gavel:")
    if submitted and verdict is None:
        st.warning("Choose a verdict first.", icon=":material/touch_app:")
    elif submitted:
        try:
            record = triage.add_verdict(
                layout.monitoring_uri(world_uri, endpoint),
                job.job_id,
                verdict=verdict,
                analyst=analyst,
                note=note,
            )
        except Exception as exc:  # noqa: BLE001 - shown as a message
            show_error(exc, action="recording the verdict")
            return
        data.forget_verdicts()
        state.put(state.REPORT_VERDICT_SENT, (job.job_id, record.id))
        st.rerun()
    sent = state.get(state.REPORT_VERDICT_SENT)
    if sent and sent[0] == job.job_id:
        st.success(
            "Verdict recorded. It is stored next to the job and appears on the history page "
            "and in the report.",
            icon=":material/check_circle:",
        )
