"""The executive report as a PDF (reportlab): summary, personas, grades, policy, early warnings,
cross-sell, model quality and data notes, with the dashboard's charts.

Every page carries a header with the data's as-of date and the filters applied, and a footer with
the build and "page N of M". Figures that describe the whole book whatever the filters (persona
profiles, the policy's evaluation by persona, the model's measures) say so where they appear.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import BinaryIO
from xml.sax.saxutils import escape

import polars as pl
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    Image,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from dashboard import ui

from .charts import ChartRenderer
from .content import ReportContent

# Binary streams instead of ASCII85 text: without reportlab's optional C accelerator, encoding the
# charts' pixels as ASCII85 in Python took over a second per report, and made the file a quarter larger.
rl_config.useA85 = 0

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
HEADER_HEIGHT = 17 * mm
FOOTER_HEIGHT = 10 * mm
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN
INK = colors.HexColor("#212529")
MUTED = colors.HexColor("#6c757d")
RULE = colors.HexColor("#dee2e6")
BRAND = colors.HexColor("#343a40")
HEAD_FILL = colors.HexColor("#f1f3f5")

#: Chart sizes in CSS pixels (rendered at twice that): wide charts, and taller ones for heatmaps.
CHART_SIZES = {
    "profiles": (900, 560),
    "penetration": (900, 520),
    "campaign_mix": (900, 520),
    "curves": (900, 520),
    "personas": (900, 420),
}
DEFAULT_CHART_SIZE = (900, 430)
#: Device pixels per CSS pixel: 1.5 gives about 200 dots per inch across the page, sharp on paper;
#: 2 would add a third to the time spent compressing the images into the PDF.
CHART_SCALE = 1.5

_base = getSampleStyleSheet()
STYLES = {
    "title": ParagraphStyle("title", parent=_base["Title"], fontSize=22, leading=26, alignment=0, spaceAfter=4),
    "subtitle": ParagraphStyle("subtitle", parent=_base["Normal"], fontSize=11, leading=14, textColor=MUTED),
    "h1": ParagraphStyle("h1", parent=_base["Heading1"], fontSize=16, leading=20, spaceBefore=2, spaceAfter=6),
    "h2": ParagraphStyle("h2", parent=_base["Heading2"], fontSize=12, leading=15, spaceBefore=8, spaceAfter=3),
    "body": ParagraphStyle("body", parent=_base["Normal"], fontSize=9.5, leading=13, textColor=INK),
    "small": ParagraphStyle("small", parent=_base["Normal"], fontSize=8, leading=10.5, textColor=MUTED),
    "bullet": ParagraphStyle("bullet", parent=_base["Normal"], fontSize=9.5, leading=13, leftIndent=10, bulletIndent=0),
    "cell": ParagraphStyle("cell", parent=_base["Normal"], fontSize=8, leading=10),
    "cell_right": ParagraphStyle("cell_right", parent=_base["Normal"], fontSize=8, leading=10, alignment=TA_RIGHT),
    "card_title": ParagraphStyle("card_title", parent=_base["Normal"], fontSize=8, leading=10, textColor=MUTED),
    "card_value": ParagraphStyle(
        "card_value", parent=_base["Normal"], fontSize=17, leading=21, fontName="Helvetica-Bold"
    ),
    "card_note": ParagraphStyle("card_note", parent=_base["Normal"], fontSize=7.5, leading=9.5, textColor=MUTED),
}


def text(value: object) -> str:
    """Plain text made safe for a reportlab paragraph (which reads a little XML)."""
    return escape(str(value if value is not None else "–"))


def para(value: str, style: str = "body") -> Paragraph:
    return Paragraph(value, STYLES[style])


# -- page furniture ------------------------------------------------------------------------------------


class NumberedCanvas(Canvas):
    """Draws "Page N of M" once the number of pages is known (the whole story is laid out first)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._pages: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont("Helvetica", 8)
            self.setFillColor(MUTED)
            self.drawRightString(PAGE_WIDTH - MARGIN, MARGIN - 2 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def furniture(content: ReportContent) -> Callable[[Canvas, BaseDocTemplate], None]:
    """Header (title, as-of date, filters) and footer (build, generated at) of every page."""
    as_of = f"Data as of {content.as_of:%d %B %Y}" if content.as_of else "As-of date unknown"
    scope = Paragraph(f"<b>Filters:</b> {text(content.scope)}", STYLES["small"])
    build_id = (content.build or {}).get("build_id") or "unknown build"
    footer = f"Segrisk · build {build_id} · generated {content.generated_at:%Y-%m-%d %H:%M} UTC"

    def draw(canvas: Canvas, _doc: BaseDocTemplate) -> None:
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN
        canvas.setFillColor(BRAND)
        canvas.setFont("Helvetica-Bold", 10)
        canvas.drawString(MARGIN, top - 3 * mm, "Segrisk · Executive risk report")
        canvas.setFont("Helvetica", 9)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top - 3 * mm, as_of)
        _, height = scope.wrap(BODY_WIDTH, 12 * mm)
        scope.drawOn(canvas, MARGIN, top - 5 * mm - height)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.6)
        canvas.line(MARGIN, top - HEADER_HEIGHT + 3 * mm, PAGE_WIDTH - MARGIN, top - HEADER_HEIGHT + 3 * mm)
        canvas.line(MARGIN, MARGIN + 1.5 * mm, PAGE_WIDTH - MARGIN, MARGIN + 1.5 * mm)
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, MARGIN - 2 * mm, footer)
        canvas.restoreState()

    return draw


# -- building blocks -----------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[object]], widths: list[float], numeric: set[int] | None = None) -> Table:
    """A small table with a shaded header row; columns in ``numeric`` align right."""
    numeric = numeric or set()

    def cell(value: object, column: int, bold: bool = False) -> Paragraph:
        style = "cell_right" if column in numeric else "cell"
        body = text(value)
        return Paragraph(f"<b>{body}</b>" if bold else body, STYLES[style])

    data = [[cell(h, i, bold=True) for i, h in enumerate(header)]]
    data += [[cell(v, i) for i, v in enumerate(row)] for row in rows]
    result = Table(data, colWidths=[w * BODY_WIDTH for w in widths], repeatRows=1)
    result.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
                ("LINEBELOW", (0, 0), (-1, 0), 0.6, RULE),
                ("LINEBELOW", (0, 1), (-1, -1), 0.3, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return result


def cards(items: list[tuple[str, str, str]], columns: int = 3) -> Table:
    """Headline figures as a grid of cards: (title, value, note)."""
    cells = [
        [para(text(title), "card_title"), para(text(value), "card_value"), para(text(note), "card_note")]
        for title, value, note in items
    ]
    while len(cells) % columns:
        cells.append([""])
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    grid = Table(rows, colWidths=[BODY_WIDTH / columns] * columns)
    grid.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.6, RULE),
                ("INNERGRID", (0, 0), (-1, -1), 0.6, RULE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
                ("LEFTPADDING", (0, 0), (-1, -1), 8),
            ]
        )
    )
    return grid


class Charts:
    """The report's charts as PNG images, rendered in one browser in the order the story needs them."""

    def __init__(self, content: ReportContent, renderer: ChartRenderer | None) -> None:
        self.images: dict[str, tuple[bytes, int, int]] = {}
        if content.figures and renderer is None:
            raise ValueError("a report with charts needs a chart renderer")
        for name, figure in content.figures.items():
            width, height = CHART_SIZES.get(name, DEFAULT_CHART_SIZE)
            self.images[name] = (renderer.png(figure, width, height, CHART_SCALE), width, height)

    def __call__(self, name: str) -> list:
        if name not in self.images:
            return []
        png, width, height = self.images[name]
        return [Image(BytesIO(png), width=BODY_WIDTH, height=BODY_WIDTH * height / width), Spacer(1, 3 * mm)]


def absent(sentence: str) -> Paragraph:
    return para(f"<i>{text(sentence)}</i>", "body")


def money(content: ReportContent, value: float | None) -> str:
    amount = ui.money(value)
    return f"{amount} {content.money_unit}" if value is not None and content.money_unit else amount


# -- sections ------------------------------------------------------------------------------------------


def summary(content: ReportContent, chart: Charts) -> list:
    figures = content.headline
    scope_note = "whole book" if not content.is_filtered else content.scope
    loss_note = (
        "approved book, current policy"
        if figures.get("expected_loss") is not None
        else "whole book only: shown without filters"
    )
    story: list = [
        para("Executive risk report", "title"),
        para(subtitle(content), "subtitle"),
        Spacer(1, 5 * mm),
        cards(
            [
                ("Customers", ui.count(figures.get("customers")), scope_note),
                (
                    "Personas",
                    ui.count(figures.get("personas")),
                    "in view" if figures.get("personas") else "not trained",
                ),
                ("Default rate", ui.percent(figures.get("default_rate")), "observed, 12 months"),
                ("Automation rate", ui.percent(figures.get("automation_rate")), "decided without a person"),
                ("Open alerts", ui.count(figures.get("open_alerts")), "early warnings not acknowledged"),
                ("Expected loss", money(content, figures.get("expected_loss")), loss_note),
            ]
        ),
        Spacer(1, 5 * mm),
        para("Key points", "h2"),
    ]
    story += [Paragraph(point, STYLES["bullet"], bulletText="•") for point in key_points(content)]
    story.append(Spacer(1, 4 * mm))
    story += chart("grades")
    return story


def subtitle(content: ReportContent) -> str:
    parts = [text(content.scope[:1].upper() + content.scope[1:])]
    if content.as_of:
        parts.append(f"data as of {content.as_of:%d %B %Y}")
    spec = (content.build or {}).get("spec_name")
    if spec:
        parts.append(f"dataset {text(spec)}")
    return " · ".join(parts)


def key_points(content: ReportContent) -> list[str]:
    """The report's story in a few sentences, each from a figure of the sections that follow."""
    figures, points = content.headline, []
    points.append(
        f"{ui.count(figures.get('customers'))} customers ({text(content.scope)}), of whom "
        f"{ui.percent(figures.get('default_rate'))} defaulted within 12 months."
    )
    if content.personas:
        largest = max(content.personas, key=lambda p: p.customers)
        flagged = [p.name for p in content.personas if p.manual_underwriting]
        point = (
            f"{len(content.personas)} personas; the largest in view is {text(largest.name)} "
            f"({ui.count(largest.customers)} customers)."
        )
        if flagged:
            point += f" Manual underwriting: {text(', '.join(flagged))}."
        points.append(point)
    in_view = set(content.grades.get_column("grade").to_list()) if content.grades is not None else set()
    if in_view - {"D", "E"} and in_view & {"D", "E"}:  # a grade filter of D and E alone would make it say 100%
        worst = content.grades.filter(pl.col("grade").is_in(["D", "E"]))
        share = worst.get_column("customers").sum() / max(content.grades.get_column("customers").sum(), 1)
        points.append(
            f"{ui.percent(share)} of scored customers are in grades D and E; their observed default rate is "
            f"{ui.percent(_weighted_rate(worst))}, against {ui.percent(_weighted_rate(content.grades))} overall."
        )
    if figures.get("automation_rate") is not None:
        points.append(
            f"The current policy decides {ui.percent(figures.get('automation_rate'))} of cases without a person "
            f"and approves {ui.percent(figures.get('approval_rate'))}."
        )
    if content.warnings is not None:
        points.append(
            f"{ui.count(content.warnings['total'])} open early-warning alerts, "
            f"{ui.count(content.warnings['high'])} of high severity."
        )
    if content.cross_sell is not None:
        totals = content.cross_sell["totals"]
        points.append(
            f"{ui.count(totals['customers_with_offer'])} customers have a cross-sell offer "
            f"({ui.count(totals['offers'])} offers, {ui.count(totals['credit_offers'])} of them credit)."
        )
    if content.model is not None:
        metrics = content.model["metrics"]
        points.append(
            f"The PD model on its held-out test part (whole book): ROC AUC {metrics.get('roc_auc', float('nan')):.3f}, "
            f"KS {metrics.get('ks', float('nan')):.3f}."
        )
    return points


def _weighted_rate(grades: pl.DataFrame) -> float | None:
    customers = grades.get_column("customers").sum()
    if not customers or grades.get_column("observed_default_rate").null_count():
        return None  # no customers, or a grade's rate hidden from a viewer (too few customers)
    return float((grades.get_column("observed_default_rate") * grades.get_column("customers")).sum() / customers)


def personas_section(content: ReportContent, chart: Charts) -> list:
    story: list = [PageBreak(), para("Personas", "h1")]
    if not content.personas:
        return story + [absent("No personas in this warehouse: run `segrisk train segments` to build them.")]
    story.append(
        para(
            "Size, share and profile describe each persona in the whole book; customers in view, mean PD, "
            f"default rate and open alerts follow the filters ({text(content.scope)}).",
            "small",
        )
    )
    story.append(Spacer(1, 2 * mm))
    rows = [
        [
            f"{p.key} · {p.name}",
            ui.count(p.book_customers),
            ui.percent(p.book_share),
            ui.count(p.customers),
            ui.percent(p.mean_pd, 2),
            ui.percent(p.default_rate, 2),
            ui.count(p.open_alerts),
        ]
        for p in content.personas
    ]
    story.append(
        table(
            ["Persona", "Customers", "Share of book", "In view", "Mean PD", "Default rate", "Open alerts"],
            rows,
            [0.34, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11],
            numeric={1, 2, 3, 4, 5, 6},
        )
    )
    story.append(Spacer(1, 4 * mm))
    story += chart("personas")
    story += chart("profiles")
    story += [CondPageBreak(60 * mm), para("Who they are and what to offer them", "h2")]
    for persona in content.personas:
        story.append(persona_block(persona))
    return story


def persona_block(persona) -> KeepTogether:  # noqa: ANN001 - content.Persona
    tags = []
    if persona.archetype and persona.archetype != persona.name:
        tags.append(f"archetype {persona.archetype}")
    if persona.manual_underwriting:
        tags.append("manual underwriting")
    heading = f"<b>{text(persona.key)} · {text(persona.name)}</b>"
    if tags:
        heading += f' <font color="#b02a37">({text(", ".join(tags))})</font>'
    facts = (
        f"{ui.count(persona.book_customers)} customers, {ui.percent(persona.book_share)} of the book · in view "
        f"{ui.count(persona.customers)}, mean PD {ui.percent(persona.mean_pd, 2)}, default rate "
        f"{ui.percent(persona.default_rate, 2)}, open alerts {ui.count(persona.open_alerts)}"
    )
    lines = [
        para(heading),
        para(facts, "small"),
        para(text(persona.description)),
        para("<i>Sets them apart:</i> " + text(", ".join(f.replace("_", " ") for f in persona.top_features))),
        para("<b>Strategy:</b> " + text(persona.strategy or "–")),
    ]
    block = Table([[lines]], colWidths=[BODY_WIDTH])
    block.setStyle(
        TableStyle(
            [
                ("LINEBEFORE", (0, 0), (0, -1), 4, colors.HexColor(ui.persona_colour(persona.key))),
                ("LEFTPADDING", (0, 0), (-1, -1), 8),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return KeepTogether([block, Spacer(1, 3 * mm)])


def grades_section(content: ReportContent, chart: Charts) -> list:
    story: list = [PageBreak(), para("Risk grades", "h1")]
    if content.grades is None or content.grades.height == 0:
        return story + [
            absent("No PD model in this warehouse: it has no default outcome, or `segrisk train risk` has not run.")
        ]
    story.append(
        para(
            "Grades are set on the probability of default (PD): A below 2%, B 2-5%, C 5-10%, D 10-20%, E from 20%. "
            f"Customers, mean PD and observed default rate are those in view ({text(content.scope)}).",
            "small",
        )
    )
    story.append(Spacer(1, 2 * mm))
    total = content.grades.get_column("customers").sum() or 1
    rows = []
    for row in content.grades.iter_rows(named=True):
        rows.append(
            [
                row["grade"],
                _range(row.get("score_lower"), row.get("score_upper"), "{:.0f}"),
                _range(row.get("pd_lower"), row.get("pd_upper"), "{:.0%}"),
                ui.count(row["customers"]),
                ui.percent(row["customers"] / total),
                ui.percent(row["mean_pd"], 2),
                ui.percent(row["observed_default_rate"], 2),
            ]
        )
    story.append(
        table(
            ["Grade", "Score range", "PD range", "Customers", "Share", "Mean PD", "Observed default rate"],
            rows,
            [0.09, 0.17, 0.15, 0.14, 0.12, 0.14, 0.19],
            numeric={3, 4, 5, 6},
        )
    )
    story.append(Spacer(1, 4 * mm))
    story += chart("scores")
    return story


def _range(lower: float | None, upper: float | None, pattern: str) -> str:
    if lower is None and upper is None:
        return "–"
    low = pattern.format(lower) if lower is not None else ""
    high = pattern.format(upper) if upper is not None else ""
    return f"{low} – {high}".strip(" –") if low and high else (f"from {low}" if low else f"below {high}")


def policy_section(content: ReportContent) -> list:
    story: list = [PageBreak(), para("Approval policy", "h1")]
    policy = content.policy
    if policy is None:
        return story + [absent("No approval policy in this warehouse: `segrisk train risk` has not run.")]
    rules = [
        r.get("label") or f"{r['column']} {r['op']} {r['value']:g}"
        for r in policy.get("rules", [])
        if r.get("enabled", True)
    ]
    if policy.get("review_flagged_personas"):
        rules.insert(0, "personas flagged for manual underwriting")
    story.append(
        para(
            f"<b>{text(policy.get('name'))}</b>, version {policy.get('version')}: auto-approve at or above "
            f"{policy.get('approve_min_score', 0):.0f} points, decline below {policy.get('decline_below_score', 0):.0f}, "
            f"manual review between; loss given default {ui.percent(policy.get('lgd'), 0)}."
        )
    )
    story.append(para("<b>Sent to review whatever the score:</b> " + text("; ".join(rules) or "no rule") + "."))
    story.append(Spacer(1, 3 * mm))
    if content.decisions is not None and content.decisions.height:
        story.append(para(f"Decisions in view ({text(content.scope)})", "h2"))
        total = content.decisions.get_column("customers").sum() or 1
        order = {"approve": 0, "review": 1, "decline": 2}
        rows = [
            [decision, ui.count(customers), ui.percent(customers / total), ui.percent(mean_pd, 2)]
            for decision, customers, mean_pd in sorted(content.decisions.rows(), key=lambda r: order.get(r[0], 9))
        ]
        story.append(table(["Decision", "Customers", "Share", "Mean PD"], rows, [0.3, 0.23, 0.23, 0.24], {1, 2, 3}))
        story.append(
            para(
                f"Automation rate {ui.percent(content.headline.get('automation_rate'))}: the share decided without "
                "a person (approved or declined).",
                "small",
            )
        )
    evaluations = content.policy_evaluations
    if evaluations is not None and evaluations.height:
        story.append(para("Outcome by persona (whole book, latest risk run)", "h2"))
        rows = [
            [
                row["persona_name"],
                ui.count(row["customers"]),
                ui.percent(row["automation_rate"]),
                ui.percent(row["approval_rate"]),
                ui.percent(row["review_rate"]),
                ui.percent(row["decline_rate"]),
                ui.percent(row["expected_default_rate_approved"], 2),
                money(content, row["expected_loss_approved"]),
            ]
            for row in evaluations.iter_rows(named=True)
        ]
        story.append(
            table(
                [
                    "Persona",
                    "Customers",
                    "Automated",
                    "Approved",
                    "Review",
                    "Declined",
                    "Exp. default rate",
                    "Exp. loss",
                ],
                rows,
                [0.235, 0.11, 0.11, 0.1, 0.085, 0.09, 0.13, 0.14],
                numeric={1, 2, 3, 4, 5, 6, 7},
            )
        )
        story.append(
            para(
                "Expected default rate and loss are those of the approved cases: PD x loss given default x exposure.",
                "small",
            )
        )
    return story


def warnings_section(content: ReportContent, chart: Charts) -> list:
    story: list = [PageBreak(), para("Early warnings", "h1")]
    found = content.warnings
    if found is None:
        return story + [
            absent(
                "No early warnings in this warehouse: it has no periodic snapshots, or `segrisk train warnings` has not run."
            )
        ]
    story.append(
        para(
            f"{ui.count(found['total'])} open alerts ({ui.count(found['high'])} high severity) for "
            f"{text(content.scope)}, from the latest warnings run {text(found['run_id'])}."
        )
    )
    by_rule = found["by_rule"]
    if by_rule.height:
        wide = (
            by_rule.pivot(on="severity", index="rule_label", values="alerts", aggregate_function="sum")
            .fill_null(0)
            .sort("rule_label")
        )
        rows = []
        for row in wide.iter_rows(named=True):
            counts = [int(row.get(s) or 0) for s in ("high", "medium", "low")]
            rows.append([row["rule_label"], *map(ui.count, counts), ui.count(sum(counts))])
        story += [
            Spacer(1, 2 * mm),
            table(["Rule", "High", "Medium", "Low", "Open alerts"], rows, [0.44, 0.14, 0.14, 0.14, 0.14], {1, 2, 3, 4}),
            Spacer(1, 3 * mm),
        ]
    if found["rules_not_run"]:
        story.append(
            para("Rules that could not run on this data: " + text("; ".join(found["rules_not_run"])) + ".", "small")
        )
    story += chart("alerts_by_rule")
    story += chart("alerts_by_period")
    stability = found.get("stability")
    if found.get("psi_score") is not None:
        moved = (
            stability.filter(pl.col("status") != "green").get_column("variable").to_list()
            if stability is not None
            else []
        )
        story.append(
            para(
                f"Population stability (whole book): PSI of the score {found['psi_score']:.3f} "
                "(green below 0.1, amber to 0.25, red above); "
                + (f"inputs that moved: {text(', '.join(moved))}." if moved else "no model input moved beyond green."),
                "small",
            )
        )
    return story


def cross_sell_section(content: ReportContent, chart: Charts) -> list:
    story: list = [PageBreak(), para("Cross-sell opportunities", "h1")]
    found = content.cross_sell
    if found is None:
        return story + [absent("Cross-sell has not run on this warehouse: run `segrisk train cross-sell`.")]
    totals, customers = found["totals"], found["customers"]
    metrics = found["run"]["metrics"]
    story.append(
        para(
            f"{ui.count(totals['customers_with_offer'])} of {ui.count(customers)} customers in view have an offer "
            f"({ui.count(totals['offers'])} offers, {ui.count(totals['credit_offers'])} of them credit). Risk held back "
            f"{ui.count(metrics.get('credit_offers_blocked'))} credit offers in the whole book (grades it blocks and "
            "customers with an open alert)."
        )
    )
    mix = found["mix"]
    if mix.height:
        top = (
            mix.group_by("product_name")
            .agg(pl.col("first_choice").sum(), pl.col("offers").sum())
            .sort(["offers", "product_name"], descending=[True, False])
        )
        rows = [[name, ui.count(first), ui.count(offers)] for name, first, offers in top.rows()]
        story += [
            Spacer(1, 2 * mm),
            table(["Product", "Lead offers", "All offers"], rows, [0.5, 0.25, 0.25], {1, 2}),
            Spacer(1, 3 * mm),
        ]
    story += chart("campaign_mix")
    story += chart("penetration")
    story.append(para("Product penetration is each whole persona's share holding each product at the run.", "small"))
    return story


def model_section(content: ReportContent, chart: Charts) -> list:
    story: list = [PageBreak(), para("Model quality", "h1")]
    model = content.model
    if model is None:
        return story + [absent("No PD model in this warehouse: `segrisk train risk` has not run.")]
    metrics, champion = model["metrics"], model["champion"] or {}
    story.append(
        para(
            f"Risk run {text(model['run_id'])}, trained {model['finished_at']:%Y-%m-%d %H:%M} UTC. Champion: "
            f"{text(champion.get('family', '–'))} ({text(champion.get('imbalance', '–'))}, "
            f"{text(champion.get('calibration', '–'))} calibration). Measured on the held-out test part (whole book)."
        )
    )
    challenger = model["run_metrics"].get("challenger_roc_auc")
    rows = [
        ["ROC AUC", _number(metrics.get("roc_auc")), "ranking: 0.5 is chance, 1 is perfect"],
        ["Gini", _number(metrics.get("gini")), "2 x AUC - 1"],
        ["KS", _number(metrics.get("ks")), "largest gap between the score distributions of defaulters and others"],
        [
            "Brier score",
            _number(metrics.get("brier"), 4),
            f"mean squared error of the PD; always predicting the base rate gives {_number(metrics.get('brier_base_rate'), 4)}",
        ],
        ["Cross-validated AUC", _number(metrics.get("cv_auc")), "on the training part"],
    ]
    if challenger is not None:
        rows.append(["Challenger ROC AUC", _number(challenger), "the other model family, same test part"])
    story += [
        Spacer(1, 2 * mm),
        table(["Measure", "Value", "Meaning"], rows, [0.22, 0.12, 0.66], {1}),
        Spacer(1, 4 * mm),
    ]
    story += chart("curves")
    story.append(
        para(
            "ROC: the share of defaulters caught against the share of good customers flagged. Calibration: the "
            "observed default rate against the predicted PD, by bin; on the diagonal a PD means what it says.",
            "small",
        )
    )
    return story


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def data_section(content: ReportContent) -> list:
    story: list = [PageBreak(), para("Data notes", "h1")]
    build = content.build or {}
    facts = [
        ["Build", build.get("build_id") or "–"],
        ["Dataset spec", build.get("spec_name") or "–"],
        ["As-of date", f"{build['as_of_date']:%Y-%m-%d}" if build.get("as_of_date") else "–"],
        ["Built", f"{build['finished_at']:%Y-%m-%d %H:%M} UTC" if build.get("finished_at") else "–"],
        ["Segrisk version / schema", f"{build.get('segrisk_version') or '–'} / {build.get('schema_version') or '–'}"],
        ["Warehouse file", str(content.db_path)],
        ["Filters of this report", content.scope],
    ]
    story.append(table(["Item", "Value"], facts, [0.3, 0.7]))
    if content.row_counts is not None and content.row_counts.height:
        story.append(para("Rows loaded and quarantined", "h2"))
        rows = [
            [r["source"], ui.count(r["rows_in"]), ui.count(r["rows_out"]), ui.count(r["rows_rejected"])]
            for r in content.row_counts.iter_rows(named=True)
        ]
        story.append(table(["Source", "Rows in", "Kept", "Quarantined"], rows, [0.4, 0.2, 0.2, 0.2], {1, 2, 3}))
    if content.quarantine is not None:
        story.append(para("Quarantined rows by rule", "h2"))
        if content.quarantine.height:
            rows = [
                [r["source"], r["rule"], r["column_name"] or "–", ui.count(r["rows"])]
                for r in content.quarantine.iter_rows(named=True)
            ]
            story.append(table(["Source", "Rule", "Column", "Rows"], rows, [0.25, 0.3, 0.3, 0.15], {3}))
        else:
            story.append(para("No row broke a validation rule: nothing was quarantined."))
    if content.model_runs is not None and content.model_runs.height:
        story.append(para("Latest model runs", "h2"))
        rows = [
            [kind, run_id, f"{finished:%Y-%m-%d %H:%M} UTC"] for kind, run_id, finished in content.model_runs.rows()
        ]
        story.append(table(["Model", "Run", "Finished"], rows, [0.25, 0.45, 0.3]))
    story += [
        Spacer(1, 4 * mm),
        para(
            "Figures follow the filters unless marked whole book. Expected loss is the current policy's on the whole "
            "book and is left out when a filter is set. Customer-level lists are in the Excel export "
            "(`segrisk report --format xlsx`), not in this report.",
            "small",
        ),
    ]
    return story


# -- the document --------------------------------------------------------------------------------------


def write_pdf(
    content: ReportContent, out: BinaryIO | str, renderer: ChartRenderer | None, charts: Charts | None = None
) -> int:
    """Lay the report out into ``out`` (a path or a binary file), its charts drawn in ``renderer``
    (or given already drawn); returns the number of pages."""
    chart = charts if charts is not None else Charts(content, renderer)
    doc = BaseDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + HEADER_HEIGHT,
        bottomMargin=MARGIN + FOOTER_HEIGHT,
        title="Segrisk executive risk report",
        author="Segrisk",
        subject=f"Filters: {content.scope}",
        creator="segrisk report",
    )
    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body", leftPadding=0, rightPadding=0)
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=furniture(content))])
    story = (
        summary(content, chart)
        + personas_section(content, chart)
        + grades_section(content, chart)
        + policy_section(content)
        + warnings_section(content, chart)
        + cross_sell_section(content, chart)
        + model_section(content, chart)
        + data_section(content)
    )
    doc.build(story, canvasmaker=NumberedCanvas)
    return doc.page
