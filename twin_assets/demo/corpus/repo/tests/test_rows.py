from tinyevals import Row, run


def test_a_row_needs_every_fact():
    row = Row("refund window?", must_mention=["30 days", "receipt"])
    assert row.passes("Within 30 days, with a receipt.")
    assert not row.passes("Within 30 days.")


def test_a_forbidden_pattern_fails_the_row():
    row = Row("price?", forbidden=r"\$\d+")
    assert not row.passes("It costs $40.")


def test_run_sorts_rows():
    report = run([Row("a", ["yes"]), Row("b", ["no"])], answer=lambda q: "yes")
    assert report.pass_rate == 0.5
