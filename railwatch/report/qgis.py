"""QGIS styles for the output layers, written beside them: QGIS loads ``detections.qml`` by
itself when ``detections.geojson`` is opened from the same folder (its default-style rule), so
cars come up outlined in the class colours of every railwatch plot and labelled with the
finder's confidence, and the places of ``review.geojson`` numbered by rank."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from railwatch.classes import CLASSES
from railwatch.report.quicklook import CLASS_COLOURS

__all__ = ["detections_style", "review_style"]

_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def _outline(name: str, rgb: tuple[int, int, int], width_mm: float, style: str = "solid") -> str:
    colour = ",".join(str(v) for v in rgb) + ",255"
    return f"""      <symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option name="color" value="0,0,0,0" type="QString"/>
            <Option name="style" value="no" type="QString"/>
            <Option name="outline_color" value="{colour}" type="QString"/>
            <Option name="outline_style" value="{style}" type="QString"/>
            <Option name="outline_width" value="{width_mm}" type="QString"/>
            <Option name="outline_width_unit" value="MM" type="QString"/>
          </Option>
        </layer>
      </symbol>
"""


def _labels(expression: str, size: float) -> str:
    return f"""  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName={quoteattr(expression)} isExpression="1" fontSize="{size}"
                  fontSizeUnit="Point" textColor="255,255,255,255" textOpacity="1"/>
      <text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" bufferColor="0,0,0,255"
                   bufferOpacity="0.8"/>
      <placement placement="1" dist="0" priority="5"/>
      <rendering scaleVisibility="1" scaleMin="1" scaleMax="5000" obstacle="0"/>
    </settings>
  </labeling>
"""


def detections_style() -> str:
    """The style of ``detections.geojson``: outlines coloured by ``class``, labels with the
    finder's ``confidence`` (and the namer's ``class_confidence`` where there is one)."""
    categories = "".join(
        f'      <category symbol="{k}" value="{c}" label="{c.replace("_", " ")}" render="true"/>\n'
        for k, c in enumerate(CLASSES)
    )
    symbols = "".join(_outline(str(k), CLASS_COLOURS[c], 0.5) for k, c in enumerate(CLASSES))
    label = ("format_number(\"confidence\", 2) || if(\"class_confidence\" IS NULL, '', "
             "' / ' || format_number(\"class_confidence\", 2))")
    return (_HEAD + '<qgis version="3.28" styleCategories="Symbology|Labeling">\n'
            '  <renderer-v2 type="categorizedSymbol" attr="class" forceraster="0" symbollevels="0" '
            'enableorderby="0">\n    <categories>\n' + categories + "    </categories>\n    <symbols>\n"
            + symbols + "    </symbols>\n  </renderer-v2>\n" + _labels(label, 7) + "</qgis>\n")


def review_style() -> str:
    """The style of ``review.geojson``: dashed outlines by ``kind``, labelled with the rank."""
    kinds = (("finder_unsure", (255, 140, 0)), ("namer_unsure", (0, 255, 255)), ("string_gap", (255, 0, 0)))
    categories = "".join(
        f'      <category symbol="{k}" value="{name}" label="{name.replace("_", " ")}" render="true"/>\n'
        for k, (name, _) in enumerate(kinds)
    )
    symbols = "".join(_outline(str(k), rgb, 0.7, "dash") for k, (_, rgb) in enumerate(kinds))
    return (_HEAD + '<qgis version="3.28" styleCategories="Symbology|Labeling">\n'
            '  <renderer-v2 type="categorizedSymbol" attr="kind" forceraster="0" symbollevels="0" '
            'enableorderby="0">\n    <categories>\n' + categories + "    </categories>\n    <symbols>\n"
            + symbols + "    </symbols>\n  </renderer-v2>\n" + _labels("'#' || \"rank\"", 8) + "</qgis>\n")
