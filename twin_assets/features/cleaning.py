"""Cleaning per category: prose loses markup, page chrome and decorative Unicode but keeps its
paragraphs and punctuation; code stays code."""

import html
import re
import unicodedata

# Lines that are page chrome on the platforms we crawl (Substack, Medium, blogs), never prose.
CHROME_LINES = re.compile(
    r"^(share( this post)?|copy link|facebook|email|note|other|subscribe|sign in|sign up|subscribesign in|"
    r"listen|follow|comments|restacks|top|latest|discussions|no posts|previousnext|previous|next|"
    r"ready for more\?|start writingget the app|substack is the home for great culture|"
    r"[\w.-]+\.(substack\.com|medium\.com|github\.io)|\d+( min read)?|__)$",
    re.IGNORECASE,
)
# Where the article has ended and the platform's footer begins.
FOOTER_START = re.compile(
    r"^(discussion about this post|ready for more\?|see more recommendations|copyright \d{4}|© \d{4}|"
    r"this site requires javascript)", re.IGNORECASE)
MEDIUM_CHROME = re.compile(r"Open in app(?:Sign up|Sign in|Write)*|·Follow|ListenShare|"
                           r"See more recommendations.*$|To make Medium work, we log user data.*$", re.DOTALL)
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]{0,200}>")
EMPHASIS = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
STRAY_MARKERS = re.compile(r"(?<![\w*])(\*\*|__)(?![\w*])|^\s*(\*\*|__)\s*$")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s*")
BULLET = re.compile(r"^\s*(?:[*+•-]|\d+[.)])\s+")
RULE = re.compile(r"^\s*([*_-]\s*){3,}$")
FENCE = re.compile(r"^\s*(```|~~~)")
SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
KEEP_CONTROLS = {"\n", "\t"}
BARE_DATE = re.compile(r"^(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}, \d{4}$", re.IGNORECASE)
TOP_PARAGRAPHS = 12  # where a page repeats its title, subtitle and date above the text


def _is_decorative(char: str) -> bool:
    """Zero-width and format characters, emoji and pictographs, private-use and unassigned code points."""
    if char in KEEP_CONTROLS:
        return False
    return unicodedata.category(char) in {"Cc", "Cf", "Co", "Cn", "So", "Sk", "Cs"} or char == "\ufe0f"


def normalize_unicode(text: str) -> str:
    """NFKC folds decorative letters (LinkedIn's 𝐛𝐨𝐥𝐝, fullwidth forms, ligatures) into plain ones."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.translate({ord(char): None for char in set(text) if _is_decorative(char)})


def _start_at_title(lines: list[str], title: str | None) -> list[str]:
    """Drop navigation above the article's own heading, when the page repeats the title as a heading."""
    if not title:
        return lines
    wanted = " ".join(title.lower().split())
    for index, line in enumerate(lines):
        if HEADING.match(line):
            heading = " ".join(HEADING.sub("", line).lower().split())
            if len(heading) > 8 and heading in wanted and index < len(lines) // 2:
                return lines[index + 1:]
    return lines


def _cut_footer(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if index > len(lines) // 2 and FOOTER_START.match(line.strip()):
            return lines[:index]
    return lines


def _clean_line(line: str) -> str:
    # each pattern runs only on lines holding its marker: most lines hold none (a third of the cleaning time)
    if "[" in line:
        line = MARKDOWN_LINK.sub(r"\1", MARKDOWN_IMAGE.sub("", line))
    if "<" in line:
        line = HTML_TAG.sub("", line)
    if "*" in line or "_" in line or "~" in line:
        line = STRAY_MARKERS.sub("", EMPHASIS.sub(r"\2", line))
    if "#" in line:
        line = HEADING.sub("", line)
    return SPACES.sub(" ", line).strip()


def clean_prose(text: str, title: str | None = None) -> str:
    """Paragraphs of plain text: blank lines between paragraphs, list items on their own lines."""
    text = MEDIUM_CHROME.sub("\n", normalize_unicode(html.unescape(text)))
    lines = _cut_footer(_start_at_title(text.split("\n"), title))
    paragraphs: list[list[str]] = [[]]
    for raw in lines:
        if FENCE.match(raw) or RULE.match(raw):
            continue
        bullet = BULLET.match(raw)
        line = _clean_line(BULLET.sub("", raw) if bullet else raw)
        if not line or CHROME_LINES.match(line):
            if not raw.strip():
                paragraphs.append([])
            continue
        if bullet:
            paragraphs.append([f"- {line}"])
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)  # hard-wrapped lines of one paragraph join with a space
    joined = [" ".join(lines) for lines in paragraphs if lines]
    return "\n\n".join(_join_list_items(joined)).strip()


def drop_echoes_at_top(text: str, *headings: str | None) -> str:
    """Without the page's repeats of its own title or subtitle, and bare dates, among the first paragraphs
    (the document keeps its title and subtitle as fields)."""
    echoes = {" ".join(h.lower().split()) for h in headings if h and h.strip()}
    paragraphs = text.split("\n\n")
    top = [p for p in paragraphs[:TOP_PARAGRAPHS]
           if " ".join(p.lower().split()) not in echoes and not BARE_DATE.match(p.strip())]
    return "\n\n".join(top + paragraphs[TOP_PARAGRAPHS:])


def fenced_code(text: str) -> list[str]:
    """The lines inside code fences, cleaned as `clean_prose` cleans them (it keeps code as text)."""
    lines, inside = [], False
    for raw in html.unescape(text).split("\n"):  # fences first: normalizing drops backticks
        if FENCE.match(raw):
            inside = not inside
        elif inside and (line := _clean_line(normalize_unicode(raw))):
            lines.append(line)
    return lines


def _join_list_items(paragraphs: list[str]) -> list[str]:
    """Consecutive list items form one block, one item a line."""
    merged: list[str] = []
    for paragraph in paragraphs:
        if merged and paragraph.startswith("- ") and merged[-1].split("\n")[-1].startswith("- "):
            merged[-1] += "\n" + paragraph
        else:
            merged.append(paragraph)
    return merged


def clean_code(text: str) -> str:
    """Code as code: indentation and newlines kept; trailing spaces, control characters and a BOM go."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = "".join(char for char in text if char in KEEP_CONTROLS or unicodedata.category(char) != "Cc")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def looks_binary(text: str) -> bool:
    """Text that is mostly replacement characters or control codes was never text."""
    if not text:
        return False
    sample = text[:4096]
    junk = sum(1 for char in sample if char == "\ufffd" or (unicodedata.category(char) == "Cc"
                                                            and char not in KEEP_CONTROLS))
    return junk / len(sample) > 0.1
