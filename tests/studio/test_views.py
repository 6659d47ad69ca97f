"""What a user sees of a critique with a value the critic wrote outside the 1-4 scale."""

from rr_core.parser import parse_critique
from studio.views import score_rows, scores_html
from tests import critique_texts as texts


def test_an_out_of_range_value_is_shown_as_written_and_never_drawn_as_a_score():
    critique = parse_critique(texts.T2I_OK.replace("## Score: 3.5", "## Score: 17"), "t2i")
    rows = {row["key"]: row for row in score_rows(critique)}
    row = rows["text_faithfulness"]
    assert row["score"] is None and row["raw_score"] == "17" and row["invalid"]
    assert row["description"].startswith("not a score: '17'")
    assert rows["physical_quality"]["score"] == 3.0 and not rows["physical_quality"]["invalid"]
    page = scores_html(critique)
    assert "not a score: &#x27;17&#x27;" in page and "width:0%" in page
    assert "Reward: <b>—</b>" in page  # no reward from a critique with an invalid dimension
