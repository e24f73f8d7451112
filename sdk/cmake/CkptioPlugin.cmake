function(ckptio_add_plugin)
endfunction()
