"""A bill as PDF (fpdf2, core fonts, A4): customer and supply, period, due date and status, the line items, totals
and the period's daily consumption as a bar chart. Always in Spanish, like the printed bill."""

from __future__ import annotations

from fpdf import FPDF

from webapp.formatting import format_clp, format_date, format_last_day, format_number

STATUS = {"paid": "Pagada", "unpaid": "Pendiente de pago"}


def _latin1(text) -> str:
    """Core PDF fonts are Latin-1: keep Spanish letters, replace anything else."""
    return str(text if text is not None else "").encode("latin-1", "replace").decode("latin-1")


def render_bill_pdf(supply: dict, bill: dict, daily_points: list[dict], customer: dict | None) -> bytes:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title(_latin1(f"Boleta {bill['bill_id']}"))
    pdf.set_author("Portal de clientes")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Boleta {bill['bill_id']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    facts = [
        ("Cliente", customer["name"] if customer else ""),
        ("N° de cliente", customer["client_number"] if customer else ""),
        ("Suministro", supply["supply_id"]),
        ("Dirección", f"{supply.get('address') or ''}, {supply.get('comuna') or ''}"),
        ("Tarifa", supply.get("tariff") or ""),
        ("Período", f"{format_date(bill['period_start'])} al {format_last_day(bill['period_end'])}"),
        ("Emisión", format_date(bill.get("issue_date"))),
        ("Vencimiento", format_date(bill.get("due_date"))),
        ("Estado", STATUS.get(bill.get("status"), bill.get("status"))),
        ("Lectura inicial", f"{format_number(bill.get('register_start_kwh'))} kWh"),
        ("Lectura final", f"{format_number(bill.get('register_end_kwh'))} kWh"),
        ("Consumo facturado", f"{format_number(bill.get('kwh'))} kWh"),
    ]
    if bill.get("received_kwh"):
        facts.append(("Energía inyectada", f"{format_number(bill['received_kwh'])} kWh"))
    for label, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(45, 6, _latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")

    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Detalle", new_x="LMARGIN", new_y="NEXT")
    widths = (80, 35, 35, 30)
    pdf.set_font("Helvetica", "B", 10)
    for width, title, align in zip(widths, ("Concepto", "Cantidad", "Precio unitario", "Monto"), "LRRR"):
        pdf.cell(width, 7, _latin1(title), border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", "", 10)
    for line in bill.get("lines") or []:
        pdf.cell(widths[0], 6, _latin1(line.get("description")))
        pdf.cell(widths[1], 6, _latin1(f"{format_number(line.get('quantity'))} {line.get('unit') or ''}"), align="R")
        pdf.cell(widths[2], 6, _latin1(f"${format_number(line.get('unit_price_clp'))}"), align="R")
        pdf.cell(widths[3], 6, _latin1(format_clp(line.get("amount_clp"))), align="R")
        pdf.ln()
    for label, amount, style in (("Neto", bill.get("net_clp"), ""), ("IVA (19%)", bill.get("iva_clp"), ""),
                                 ("Total", bill.get("total_clp"), "B")):
        pdf.set_font("Helvetica", style, 10)
        pdf.cell(sum(widths[:3]), 6, _latin1(label), align="R")
        pdf.cell(widths[3], 6, _latin1(format_clp(amount)), align="R")
        pdf.ln()

    known = [point["kwh"] for point in daily_points if point["kwh"] is not None]
    if known:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 8, _latin1("Consumo diario del período (kWh)"), new_x="LMARGIN", new_y="NEXT")
        top, height, left, width = pdf.get_y() + 2, 40, pdf.l_margin, pdf.epw
        peak = max(known) or 1.0
        bar = width / max(len(daily_points), 1)
        for index, point in enumerate(daily_points):
            x = left + index * bar
            if point["kwh"] is None:
                pdf.set_fill_color(210, 214, 219)
                pdf.rect(x + 0.2, top, max(bar - 0.4, 0.2), height, style="F")
                continue
            bar_height = height * point["kwh"] / peak
            shade = (11, 110, 79) if point["quality"] == "actual" else (217, 119, 6)
            pdf.set_fill_color(*shade)
            pdf.rect(x + 0.2, top + height - bar_height, max(bar - 0.4, 0.2), bar_height, style="F")
        pdf.set_y(top + height + 2)
        pdf.set_font("Helvetica", "", 8)
        pdf.multi_cell(0, 4, _latin1(
            f"Máximo diario: {format_number(peak)} kWh. Verde: lectura real; naranjo: estimada o editada; "
            "gris: sin dato."))
    return bytes(pdf.output())
