from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from config import ops
from config.api import api_not_found
from config.pages import home
from config.schema_views import SchemaApi
from consent.admin.site import AssentAdminSite
from consent.api.receipts import jwks_view

# The admin behind two-factor sign-in (Art. 32; off only where ASSENT_ADMIN_REQUIRE_2FA is, i.e. the demo), with
# the dashboard and the records of processing. Every model registered on admin.site stays registered.
admin.site.__class__ = AssentAdminSite

handler400 = "config.pages.bad_request"  # a body too large or unreadable: a problem under /api/, else a readable page

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path(".well-known/jwks.json", jwks_view, name="jwks"),
    path("api/schema/", SchemaApi.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("consent.api.urls")),
    path("api/v1/", include("subjects.api.urls")),
    re_path(r"^api/", api_not_found),  # any other path under /api/ is a problem+json 404, never an HTML page
    path("", home, name="home"),  # the admin's "View site" (its site_url, "/") lands here
    path("", include("consent.urls")),
    path("portal/", include("subjects.portal.urls")),
    path("admin/", admin.site.urls),
]
