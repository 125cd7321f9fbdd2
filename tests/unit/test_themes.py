import pytest

from core.errors import TunelabError
from tests.tui_helpers import fake_app
from tui.themes import DEFAULT_THEME, parse_theme, shipped_themes


def test_shipped_themes_cover_dark_light_and_high_contrast():
    themes = {t.name: t for t in shipped_themes()}
    assert {"tunelab-dark", "tunelab-light", "tunelab-high-contrast"} <= set(themes)
    assert themes["tunelab-dark"].dark and not themes["tunelab-light"].dark


@pytest.mark.parametrize(
    "text,message",
    [
        ('name = "x"\nprimary = "#fff"\nsparkle = 1', "unknown key 'sparkle'"),
        ('primary = "#fff"', "'name' is required"),
        ('name = "x"\nprimary = ', "my.toml"),
    ],
)
def test_bad_theme_files_name_file_and_key(text, message):
    with pytest.raises(TunelabError, match=message) as info:
        parse_theme(text, "my.toml")
    assert str(info.value).startswith("theme my.toml:")


async def test_app_starts_on_the_default_theme(home):
    app = fake_app(home)
    async with app.run_test(size=(80, 24)):
        assert app.theme == DEFAULT_THEME
