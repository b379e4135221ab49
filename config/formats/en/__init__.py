"""English dates as a European reader writes them: 29 Nov 2026, never the ambiguous 11/29/2026."""
