"""English dates as a European reader writes them: 29 November 2026, 29 Nov 2026 (never 11/29/2026, which a
German retailer's English-speaking customers read as the 11th of the 29th month). Time as 24 hours."""

DATE_FORMAT = "j F Y"
SHORT_DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j F Y, H:i"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"
