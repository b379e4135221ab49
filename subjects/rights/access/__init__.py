"""Access (Art. 15) and portability (Art. 20). Each part (parts.py) writes its piece of the person's data,
encrypted, beside the export; the finish step (finish.py: gather, write, complete) streams the pieces into one zip
(one JSON file, one CSV per data category, the consent history with each event's hash, and for access the Art. 15
report as JSON and HTML in German and English).

Only this subject's rows are read (the subject, merges followed to the survivor, and the closed chains of the
subjects merged into it): never another person's data. Portability holds only what the person provided or their
use generated: identifiers, profile, linked records and their own consent declarations; not the report, the
logs of others' reads, or states Assent derived."""
