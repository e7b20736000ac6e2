from django.urls import path
from shop import views

urlpatterns = [path("proxy_sync", views.proxy_sync)]
